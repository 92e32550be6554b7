package resource

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Violation is one problem with one field.
type Violation struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every problem found in a resource. Its message names
// each field, so a user can fix them all in one go.
type ValidationError struct {
	Key        Key
	Violations []Violation
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Message
	}
	return fmt.Sprintf("%s: %s", e.Title(), strings.Join(parts, "; "))
}

// Title names what is invalid, without the details: `invalid Dataplane "x"`.
func (e *ValidationError) Title() string {
	what := "resource"
	if e.Key.Type != "" {
		what = string(e.Key.Type)
		if e.Key.Name != "" {
			what += fmt.Sprintf(" %q", e.Key.Name)
		}
	}
	return "invalid " + what
}

// IsValidation reports whether err is, or wraps, a *ValidationError.
func IsValidation(err error) bool {
	var v *ValidationError
	return errors.As(err, &v)
}

type violations []Violation

func (v *violations) add(field, format string, args ...any) {
	*v = append(*v, Violation{Field: field, Message: fmt.Sprintf(format, args...)})
}

// token reports whether s is non-empty, starts and ends with a character
// edge accepts and has only characters middle accepts in between. Hand
// written rather than regular expressions: Validate runs on every resource
// a peer sends, for every tag.
func token(s string, edge, middle func(byte) bool) bool {
	if s == "" || !edge(s[0]) || !edge(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if !middle(s[i]) {
			return false
		}
	}
	return true
}

func lowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
func alnum(c byte) bool      { return lowerAlnum(c) || 'A' <= c && c <= 'Z' }

// DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?
func isDNSLabel(s string) bool {
	return token(s, lowerAlnum, func(c byte) bool { return lowerAlnum(c) || c == '-' })
}

// Label key name: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?
func isLabelKeyName(s string) bool {
	return token(s, alnum, func(c byte) bool { return alnum(c) || c == '-' || c == '_' || c == '.' })
}

// Label value: [A-Za-z0-9]([-A-Za-z0-9_./:]*[A-Za-z0-9])?
func isLabelValue(s string) bool {
	return token(s, alnum, func(c byte) bool { return alnum(c) || c == '-' || c == '_' || c == '.' || c == '/' || c == ':' })
}

// CheckName returns why name is not a DNS-1123 label, or "" when it is.
func CheckName(name string) string {
	switch {
	case name == "":
		return "is required"
	case len(name) > 63:
		return fmt.Sprintf("%q is %d characters long: use at most 63", name, len(name))
	case !isDNSLabel(name):
		return fmt.Sprintf("%q is invalid: use lowercase letters, digits and '-', starting and ending with a letter or digit", name)
	}
	return ""
}

// Validate checks a resource's meta and spec against its type. The error is
// a *ValidationError naming every bad field.
func Validate(r *Resource) error {
	return Types.Validate(r)
}

// Validate checks a resource against the registry's descriptor of its type.
func (reg *Registry) Validate(r *Resource) error {
	var v violations
	d, err := reg.Get(r.Meta.Type)
	if err != nil {
		v.add("type", "%s", err.Error())
		return &ValidationError{Key: r.Key(), Violations: v}
	}
	if msg := CheckName(r.Meta.Name); msg != "" {
		v.add("name", "%s", msg)
	}
	switch d.Scope {
	case ScopeMesh:
		if r.Meta.Mesh == "" {
			v.add("mesh", "is required for %s", d.Type)
		} else if msg := CheckName(r.Meta.Mesh); msg != "" {
			v.add("mesh", "%s", msg)
		}
	case ScopeGlobal:
		if r.Meta.Mesh != "" {
			v.add("mesh", "must be empty: %s does not belong to a mesh", d.Type)
		}
	}
	validateLabels(r.Meta.Labels, func() string { return "labels" }, &v)
	switch {
	case r.Spec == nil:
		v.add("spec", "is missing")
	case r.Spec.ProtoReflect().Descriptor() != d.New().ProtoReflect().Descriptor():
		v.add("spec", "is a %s, not a %s", r.Spec.ProtoReflect().Descriptor().Name(), d.Type)
	case d.validate != nil:
		d.validate(r, &v)
	}
	if len(v) > 0 {
		return &ValidationError{Key: r.Key(), Violations: v}
	}
	return nil
}

// validateLabels checks label or tag keys ("prefix/name") and values.
func validateLabels(m map[string]string, field func() string, v *violations) {
	for k, val := range m {
		f := func() string { return fmt.Sprintf("%s[%q]", field(), k) }
		name := k
		if i := strings.LastIndexByte(k, '/'); i >= 0 {
			prefix := k[:i]
			name = k[i+1:]
			if prefix == "" || len(prefix) > 253 || !isDNSSubdomain(prefix) {
				v.add(f(), "key prefix %q is invalid: use a DNS subdomain such as example.com", prefix)
				continue
			}
		}
		if name == "" || len(name) > 63 || !isLabelKeyName(name) {
			v.add(f(), "key %q is invalid: use at most 63 letters, digits, '-', '_' and '.', with an optional DNS prefix and '/'", k)
			continue
		}
		if val == "" {
			v.add(f(), "value is empty")
		} else if len(val) > 253 || !isLabelValue(val) {
			v.add(f(), "value %q is invalid: use letters, digits, '-', '_', '.', '/' and ':', starting and ending with a letter or digit", val)
		}
	}
}

func isDNSSubdomain(s string) bool {
	for part := range strings.SplitSeq(s, ".") {
		if len(part) > 63 || !isDNSLabel(part) {
			return false
		}
	}
	return true
}

// checkAddress returns why s is not an IP address or host name, or "".
func checkAddress(s string) string {
	if s == "" {
		return "is required"
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return ""
	}
	if len(s) <= 253 && isDNSSubdomain(strings.ToLower(s)) && !allDigitsAndDots(s) {
		return ""
	}
	return fmt.Sprintf("%q is neither an IP address nor a host name", s)
}

func allDigitsAndDots(s string) bool {
	return strings.Trim(s, "0123456789.") == ""
}

func checkPort(p uint32) string {
	if p < 1 || p > 65535 {
		return fmt.Sprintf("%d is out of range: use 1-65535", p)
	}
	return ""
}
