// Package ddi is the wire format of Eclipse hawkBit's Direct Device Integration API, version 1: the JSON that
// SWUpdate's suricatta, RAUC's hawkBit updater and Zephyr's hawkBit client exchange with an update server, and
// the rules for reading what they send. It does no I/O.
package ddi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Link is a HAL link.
type Link struct {
	Href string `json:"href"`
}

// Root is the answer to a poll of GET /{tenant}/controller/v1/{controllerId}.
type Root struct {
	Config Config          `json:"config"`
	Links  map[string]Link `json:"_links"`
}

// Config carries the polling interval the server suggests.
type Config struct {
	Polling Polling `json:"polling"`
}

// Polling is the suggested sleep between polls.
type Polling struct {
	Sleep string `json:"sleep"` // HH:MM:SS
}

// Sleep formats a poll interval as hawkBit does, HH:MM:SS, in whole seconds (at least one, at most 99:59:59).
func Sleep(d time.Duration) string {
	s := int64(d / time.Second)
	s = max(1, min(s, 99*3600+59*60+59))
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// DeploymentBase is the answer to GET .../deploymentBase/{actionId}.
type DeploymentBase struct {
	ID         string     `json:"id"`
	Deployment Deployment `json:"deployment"`
}

// Deployment says how and what to install.
type Deployment struct {
	Download string  `json:"download"` // skip, attempt or forced
	Update   string  `json:"update"`
	Chunks   []Chunk `json:"chunks"`
}

// Handling types of a deployment.
const (
	Forced  = "forced"
	Attempt = "attempt"
	Skip    = "skip"
)

// Chunk is one software module of a deployment.
type Chunk struct {
	Part      string     `json:"part"`
	Version   string     `json:"version"`
	Name      string     `json:"name"`
	Artifacts []Artifact `json:"artifacts"`
}

// Artifact is one file of a software module.
type Artifact struct {
	Filename string          `json:"filename"`
	Hashes   Hashes          `json:"hashes"`
	Size     int64           `json:"size"`
	Links    map[string]Link `json:"_links"`
}

// Hashes of an artifact, lowercase hex.
type Hashes struct {
	SHA1   string `json:"sha1"`
	MD5    string `json:"md5"`
	SHA256 string `json:"sha256"`
}

// CancelAction is the answer to GET .../cancelAction/{actionId}.
type CancelAction struct {
	ID           string `json:"id"`
	CancelAction struct {
		StopID string `json:"stopId"`
	} `json:"cancelAction"`
}

// NewCancelAction returns the cancel resource of an action: hawkBit's stopId is the action it stops.
func NewCancelAction(id int64) CancelAction {
	c := CancelAction{ID: strconv.FormatInt(id, 10)}
	c.CancelAction.StopID = c.ID
	return c
}

// Execution states a controller reports.
const (
	Closed     = "closed"
	Proceeding = "proceeding"
	Canceled   = "canceled"
	Scheduled  = "scheduled"
	Rejected   = "rejected"
	Resumed    = "resumed"
	Downloaded = "downloaded"
	Download   = "download"
)

// Results of a finished execution.
const (
	Success = "success"
	Failure = "failure"
	None    = "none"
)

// Feedback is what a controller posts to .../feedback.
type Feedback struct {
	ID     FlexID `json:"id"` // clients send the action id as a number or a string; it is not trusted either way
	Time   string `json:"time"`
	Status Status `json:"status"`
}

// Status is the state a controller reports.
type Status struct {
	Execution string   `json:"execution"`
	Result    Result   `json:"result"`
	Details   []string `json:"details"`
}

// Result is how an execution ended, and progress on the way.
type Result struct {
	Finished string    `json:"finished"`
	Progress *Progress `json:"progress,omitempty"`
}

// Progress counts chunks done.
type Progress struct {
	Cnt int `json:"cnt"`
	Of  int `json:"of"`
}

// FlexID is an id sent as a JSON number or string (SWUpdate sends a number, Zephyr and hawkBit's own examples a
// string, SWUpdate's configData an empty string).
type FlexID string

// UnmarshalJSON accepts a number, a string or null.
func (f *FlexID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*f = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = FlexID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("id must be a number or a string")
	}
	*f = FlexID(n.String())
	return nil
}

// MaxDetail bounds the detail kept from one feedback.
const MaxDetail = 2000

// Validate checks a feedback's states and returns its details as one line, cut to MaxDetail bytes. Zephyr
// sends "download" as hawkBit spells it; "downloading" is accepted too.
func (f *Feedback) Validate() (detail string, err error) {
	switch f.Status.Execution {
	case Closed, Proceeding, Canceled, Scheduled, Rejected, Resumed, Downloaded, Download:
	case "downloading":
		f.Status.Execution = Download
	case "":
		return "", fmt.Errorf("status.execution is required")
	default:
		return "", fmt.Errorf("status.execution %q is not one of closed, proceeding, canceled, scheduled, "+
			"rejected, resumed, downloaded, download", f.Status.Execution)
	}
	switch f.Status.Result.Finished {
	case Success, Failure, None:
	case "":
		f.Status.Result.Finished = None
	default:
		return "", fmt.Errorf("status.result.finished %q is not one of success, failure, none",
			f.Status.Result.Finished)
	}
	if len(f.Status.Details) > 100 {
		return "", fmt.Errorf("at most 100 details per feedback")
	}
	detail = strings.Join(f.Status.Details, "; ")
	detail = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(detail, "\uFFFD"))
	if len(detail) > MaxDetail {
		detail = strings.ToValidUTF8(detail[:MaxDetail], "")
	}
	return strings.TrimSpace(detail), nil
}

// ConfigData is what a controller puts to .../configData: its attributes.
type ConfigData struct {
	ID     FlexID            `json:"id"`
	Time   string            `json:"time"`
	Status *Status           `json:"status,omitempty"`
	Mode   string            `json:"mode"` // merge (default), replace or remove
	Data   map[string]string `json:"data"`
}

// Limits on attributes: hawkBit takes names and values of up to 128 bytes; lodestone takes longer values.
const (
	MaxAttributes     = 100
	MaxAttributeName  = 128
	MaxAttributeValue = 512
)

// Validate checks the mode and the attributes.
func (c *ConfigData) Validate() error {
	switch c.Mode {
	case "":
		c.Mode = "merge"
	case "merge", "replace", "remove":
	default:
		return fmt.Errorf("mode %q is not one of merge, replace, remove", c.Mode)
	}
	if c.Data == nil {
		return fmt.Errorf("data is required: an object of attribute names and values")
	}
	if len(c.Data) > MaxAttributes {
		return fmt.Errorf("at most %d attributes", MaxAttributes)
	}
	for k, v := range c.Data {
		if !text(k, MaxAttributeName) || k == "" {
			return fmt.Errorf("attribute name %q: 1-%d characters, no control characters", k, MaxAttributeName)
		}
		if !text(v, MaxAttributeValue) {
			return fmt.Errorf("attribute %q: the value must be at most %d characters, no control characters", k,
				MaxAttributeValue)
		}
	}
	return nil
}

func text(s string, maxLen int) bool {
	if len(s) > maxLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// ParseActionID reads an action id from a path.
func ParseActionID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("action id must be a positive integer")
	}
	return id, nil
}

// JSONSchema is FlexID's schema in lodestone's API description: clients send the id as a number or a string.
func (FlexID) JSONSchema() map[string]any {
	return map[string]any{"type": []any{"string", "integer", "null"}}
}
