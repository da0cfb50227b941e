package console

// This file holds the console's pages for administration: users, tokens, keys, webhooks, retention, backup, audit log.

// AdminDeps are the services these pages use; nil ones leave the pages saying the feature is not available.
type AdminDeps struct{}

// adminPages are this area's templates (templates/NAME.html).
var adminPages = []string{}

func (c *Console) routesAdmin() {}
