package resource

// CheckLabel returns why key: value is not a valid label or tag, or "" when
// it is. It is the rule Validate applies to every label and tag, for code
// that derives them from elsewhere (Kubernetes pod labels) and must drop
// the ones a resource may not carry.
func CheckLabel(key, value string) string {
	var v violations
	validateLabels(map[string]string{key: value}, func() string { return "label" }, &v)
	if len(v) == 0 {
		return ""
	}
	return v[0].Message
}
