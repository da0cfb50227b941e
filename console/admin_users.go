package console

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

type adminUsersView struct {
	Env   []httpapi.ConfiguredUser
	Users []*lodestone.User
	Me    string
	Roles []string
	Min   int
}

var roleNames = []string{"viewer", "provisioner", "admin"}

func (c *Console) adminUsers(w http.ResponseWriter, r *request) error {
	cs, err := c.credentials()
	if err != nil {
		return err
	}
	v := adminUsersView{Me: r.user.Name, Roles: roleNames, Min: httpapi.MinPassword}
	if a := c.cfg.Admin.Accounts; a != nil {
		v.Env = a.ConfiguredUsers()
	}
	if v.Users, err = cs.FindUsers(r.ctx()); err != nil {
		return err
	}
	c.adminPage(w, r, http.StatusOK, "admin_users", "users", "Users", v)
	return nil
}

// accounts returns what user management needs, or says why it cannot be done here.
func (c *Console) accounts() (lodestone.CredentialStore, UserAccounts, error) {
	cs, err := c.credentials()
	if err != nil {
		return nil, nil, err
	}
	if c.cfg.Admin.Accounts == nil {
		return nil, nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "this server manages no users")
	}
	return cs, c.cfg.Admin.Accounts, nil
}

// checkPassword applies the API's password rules.
func checkPassword(p string) error {
	if len(p) < httpapi.MinPassword || len(p) > httpapi.MaxPassword {
		return lodestone.Errorf(lodestone.EINVALID, "a password is %d to %d bytes long", httpapi.MinPassword,
			httpapi.MaxPassword)
	}
	return nil
}

func formRole(r *request) (lodestone.Role, error) {
	role, ok := lodestone.ParseRole(r.PostFormValue("role"))
	if !ok {
		return 0, lodestone.Errorf(lodestone.EINVALID, "role must be viewer, provisioner or admin")
	}
	return role, nil
}

// newPassword is a generated password: 128 random bits, shown once.
func newPassword() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// adminCreateUser creates a managed user with the password given, or a generated one shown once.
func (c *Console) adminCreateUser(w http.ResponseWriter, r *request) error {
	cs, acc, err := c.accounts()
	if err != nil {
		return err
	}
	const back = "/ui/admin/users"
	name := strings.TrimSpace(r.PostFormValue("name"))
	role, err := formRole(r)
	if err == nil && !httpapi.ValidName(name) {
		err = lodestone.Errorf(lodestone.EINVALID, "a user name is 1-64 letters, digits, '.', '_', '-' or '@'")
	}
	pass, generated := r.PostFormValue("password"), false
	if pass == "" {
		pass, generated = newPassword(), true
	}
	if err == nil {
		err = checkPassword(pass)
	}
	if err == nil && acc.IsConfigured(name) {
		err = lodestone.Errorf(lodestone.ECONFLICT, "user %q is configured in the environment", name)
	}
	if err != nil {
		return c.done(w, r, back, "", err)
	}
	hash, err := acc.HashPassword(pass)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	u := &lodestone.User{Name: name, Role: role, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := cs.CreateUser(r.ctx(), u); err != nil {
		return c.done(w, r, back, "", err)
	}
	if generated {
		c.showSecret(w, r, secretView{What: "password", Name: name, Secret: pass, Sub: "users", Back: back,
			Use: "Give it to " + name + " over a private channel; they sign in with it at /ui/login."})
		return nil
	}
	return c.done(w, r, back, "Created user "+name+" ("+role.String()+").", nil)
}

// changeUser loads a managed user, applies f and stores the change. The store brings the user's console sessions in
// line (a new role applies at once; a new password or disabling ends them) and this replica forgets the user's
// remembered credentials.
func (c *Console) changeUser(r *request, f func(u *lodestone.User) error) (*lodestone.User, error) {
	cs, acc, err := c.accounts()
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	if acc.IsConfigured(name) {
		return nil, lodestone.Errorf(lodestone.ECONFLICT, "user %q is configured in the environment; change it there", name)
	}
	u, err := cs.FindUser(r.ctx(), name)
	if err != nil {
		return nil, err
	}
	if err := f(u); err != nil {
		return nil, err
	}
	u.UpdatedAt = time.Now().UTC()
	if err := cs.UpdateUser(r.ctx(), u); err != nil {
		return nil, err
	}
	c.forget()
	return u, nil
}

func (c *Console) adminUserRole(w http.ResponseWriter, r *request) error {
	u, err := c.changeUser(r, func(u *lodestone.User) error {
		role, err := formRole(r)
		u.Role = role
		return err
	})
	if err != nil {
		return c.done(w, r, "/ui/admin/users", "", err)
	}
	return c.done(w, r, "/ui/admin/users", u.Name+" is now "+u.Role.String()+".", nil)
}

func (c *Console) adminUserDisable(w http.ResponseWriter, r *request) error {
	u, err := c.changeUser(r, func(u *lodestone.User) error {
		if err := httpapi.CheckNotSelf(r.ctx(), u.Name, "disable"); err != nil {
			return err
		}
		if u.DisabledAt == nil {
			now := time.Now().UTC()
			u.DisabledAt = &now
		}
		return nil
	})
	if err != nil {
		return c.done(w, r, "/ui/admin/users", "", err)
	}
	return c.done(w, r, "/ui/admin/users", "Disabled "+u.Name+": their sign-ins are refused and their sessions ended.", nil)
}

func (c *Console) adminUserEnable(w http.ResponseWriter, r *request) error {
	u, err := c.changeUser(r, func(u *lodestone.User) error {
		u.DisabledAt = nil
		return nil
	})
	if err != nil {
		return c.done(w, r, "/ui/admin/users", "", err)
	}
	return c.done(w, r, "/ui/admin/users", "Enabled "+u.Name+".", nil)
}

// adminUserPassword sets a new password, the one given or a generated one shown once, and ends the user's
// sessions.
func (c *Console) adminUserPassword(w http.ResponseWriter, r *request) error {
	pass, generated := r.PostFormValue("password"), false
	if pass == "" {
		pass, generated = newPassword(), true
	}
	u, err := c.changeUser(r, func(u *lodestone.User) error {
		if err := checkPassword(pass); err != nil {
			return err
		}
		hash, err := c.cfg.Admin.Accounts.HashPassword(pass)
		u.PasswordHash = hash
		return err
	})
	if err != nil {
		return c.done(w, r, "/ui/admin/users", "", err)
	}
	if generated {
		c.showSecret(w, r, secretView{What: "password", Name: u.Name, Secret: pass, Sub: "users",
			Back: "/ui/admin/users", Use: "Their sessions were ended. Give the password to " + u.Name +
				" over a private channel."})
		return nil
	}
	return c.done(w, r, "/ui/admin/users", "Set a new password for "+u.Name+"; their sessions were ended.", nil)
}

func (c *Console) adminUserDelete(w http.ResponseWriter, r *request) error {
	cs, acc, err := c.accounts()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	switch {
	case acc.IsConfigured(name):
		err = lodestone.Errorf(lodestone.ECONFLICT, "user %q is configured in the environment; remove it there", name)
	default:
		err = httpapi.CheckNotSelf(r.ctx(), name, "delete")
	}
	if err == nil {
		err = cs.DeleteUser(r.ctx(), name)
	}
	if err == nil {
		c.forget()
	}
	return c.done(w, r, "/ui/admin/users", "Deleted user "+name+".", err)
}
