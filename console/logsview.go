package console

// This file holds the console's pages for the log explorer and crash uploads.

// LogsDeps are the services these pages use; nil ones leave the pages saying the feature is not available.
type LogsDeps struct{}

// logsPages are this area's templates (templates/NAME.html).
var logsPages = []string{}

func (c *Console) routesLogs() {}
