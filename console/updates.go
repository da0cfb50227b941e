package console

// This file holds the console's pages for firmware artifacts, targets, campaigns and the FUOTA fleet.

// UpdatesDeps are the services these pages use; nil ones leave the pages saying the feature is not available.
type UpdatesDeps struct{}

// updatesPages are this area's templates (templates/NAME.html).
var updatesPages = []string{}

func (c *Console) routesUpdates() {}
