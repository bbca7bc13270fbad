package npm

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// maxNameLength is npm's limit on package names. npm lets old packages
// exceed it; unireg keeps it for them too, since a name is a storage key's
// path segment.
const maxNameLength = 214

// The characters of a package name: those encodeURIComponent leaves alone,
// which is what npm's rule for existing packages allows (validate-npm-
// package-name's validForOldPackages: capitals and ~'!()* are only refused
// for new packages). Scopes are the public registry's user and
// organisation names, always lowercase.
var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9._~!'()*-]+$`)
	scopeRE = regexp.MustCompile(`^@[a-z0-9][a-z0-9._~-]*$`)
)

// ValidName checks a package name against npm's rules for the names of
// existing packages, which the public registry still serves (JSONStream),
// and says what is wrong. Whether a new package may take a name that
// differs from another only by case is decided at publish (casevariants.go).
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
	switch strings.ToLower(name) {
	case "node_modules", "favicon.ico":
		return fmt.Errorf("package name %q is reserved", name)
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
		if strings.HasPrefix(rest, ".") {
			return fmt.Errorf("package name %q must not start with . after its scope", name)
		}
		base = rest
	} else if strings.ContainsAny(name[:1], ".-_") {
		return fmt.Errorf("package name %q must not start with . - or _", name)
	}
	if strings.ContainsRune(base, '/') {
		return fmt.Errorf("package name %q contains a slash", name)
	}
	if !nameRE.MatchString(base) {
		return fmt.Errorf("package name %q may contain only letters, digits and - . _ ~ ! ' ( ) *", name)
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
