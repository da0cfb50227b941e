package console

// This file holds the console's pages for groups and their membership.

// groupsPages are this area's templates (templates/NAME.html).
var groupsPages = []string{}

func (c *Console) routesGroups() {}
