package npm

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// maxNameLength is npm's limit on package names.
const maxNameLength = 214

// The characters npm allows in new package names: lowercase, URL-safe, no
// leading dot or underscore (validate-npm-package-name).
var (
	unscopedRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._~-]*$`)
	scopeRE    = regexp.MustCompile(`^@[a-z0-9][a-z0-9._~-]*$`)
)

// ValidName checks a package name against npm's naming rules and says what
// is wrong.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("package name is empty")
	}
	if len(name) > maxNameLength {
		return fmt.Errorf("package name is longer than %d characters", maxNameLength)
	}
	if strings.TrimSpace(name) != name {
		return fmt.Errorf("package name has leading or trailing spaces")
	}
	base := name
	if strings.HasPrefix(name, "@") {
		scope, rest, ok := strings.Cut(name, "/")
		if !ok || rest == "" {
			return fmt.Errorf("scoped package name %q must look like @scope/name", name)
		}
		if !scopeRE.MatchString(scope) {
			return fmt.Errorf("scope %q may contain only lowercase letters, digits and - . _ ~, and must not start with . or _", scope)
		}
		base = rest
	}
	if strings.ContainsRune(base, '/') {
		return fmt.Errorf("package name %q contains a slash", name)
	}
	if !unscopedRE.MatchString(base) {
		return fmt.Errorf("package name %q may contain only lowercase letters, digits and - . _ ~, and must not start with . or _", name)
	}
	switch base {
	case "node_modules", "favicon.ico":
		return fmt.Errorf("package name %q is reserved", name)
	}
	return nil
}

// tarballFileName is the file name npm gives a version's tarball:
// name-version.tgz, without the scope.
func tarballFileName(name, version string) string {
	if i := strings.IndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return name + "-" + version + ".tgz"
}

// escapeName renders a name as it appears in a URL path: @scope%2fname.
func escapeName(name string) string {
	return strings.Replace(url.PathEscape(name), "%2F", "%2f", 1)
}
