package npm

import (
	"strings"
	"testing"
)

func TestParsePathRoutesEveryClientForm(t *testing.T) {
	tests := []struct {
		name string
		path string
		want route
	}{
		{"unscoped packument", "/lodash", route{kind: RoutePackument, pkg: "lodash"}},
		{"trailing slash ignored", "/lodash/", route{kind: RoutePackument, pkg: "lodash"}},
		{"scope escaped lower-case (npm, yarn)", "/@acme%2fx", route{kind: RoutePackument, pkg: "@acme/x"}},
		{"scope escaped upper-case (pnpm)", "/@acme%2Fx", route{kind: RoutePackument, pkg: "@acme/x"}},
		{"scope with plain slash", "/@acme/x", route{kind: RoutePackument, pkg: "@acme/x"}},
		{"escaped at sign", "/%40acme%2fx", route{kind: RoutePackument, pkg: "@acme/x"}},
		{"rev", "/lodash/-rev/3-abc", route{kind: RoutePackageRev, pkg: "lodash", rev: "3-abc"}},
		{"scoped rev escaped", "/@acme%2fx/-rev/3-abc", route{kind: RoutePackageRev, pkg: "@acme/x", rev: "3-abc"}},
		{"scoped rev plain", "/@acme/x/-rev/3-abc", route{kind: RoutePackageRev, pkg: "@acme/x", rev: "3-abc"}},
		{"tarball", "/lodash/-/lodash-4.17.21.tgz", route{kind: RouteTarball, pkg: "lodash", arg: "lodash-4.17.21.tgz"}},
		{"scoped tarball plain", "/@acme/x/-/x-1.0.0.tgz", route{kind: RouteTarball, pkg: "@acme/x", arg: "x-1.0.0.tgz"}},
		{"scoped tarball escaped", "/@acme%2fx/-/x-1.0.0.tgz", route{kind: RouteTarball, pkg: "@acme/x", arg: "x-1.0.0.tgz"}},
		{"tarball rev", "/lodash/-/lodash-1.0.0.tgz/-rev/4-def", route{kind: RouteTarballRev, pkg: "lodash", arg: "lodash-1.0.0.tgz", rev: "4-def"}},
		{"scoped tarball rev", "/@acme/x/-/x-1.0.0.tgz/-rev/4-def", route{kind: RouteTarballRev, pkg: "@acme/x", arg: "x-1.0.0.tgz", rev: "4-def"}},
		{"version", "/lodash/1.2.3", route{kind: RouteVersion, pkg: "lodash", arg: "1.2.3"}},
		{"tag", "/lodash/latest", route{kind: RouteVersion, pkg: "lodash", arg: "latest"}},
		{"scoped version escaped", "/@acme%2Fx/2.0.0-beta.1", route{kind: RouteVersion, pkg: "@acme/x", arg: "2.0.0-beta.1"}},
		{"scoped tag plain", "/@acme/x/beta", route{kind: RouteVersion, pkg: "@acme/x", arg: "beta"}},
		{"ping", "/-/ping", route{kind: RoutePing}},
		{"whoami", "/-/whoami", route{kind: RouteWhoami}},
		{"search", "/-/v1/search", route{kind: RouteSearch}},
		{"web login", "/-/v1/login", route{kind: RouteLogin}},
		{"legacy login", "/-/user/org.couchdb.user:bob", route{kind: RouteUser, arg: "bob"}},
		{"legacy login escaped name", "/-/user/org.couchdb.user:bob%40example.com", route{kind: RouteUser, arg: "bob@example.com"}},
		{"logout", "/-/user/token/unireg_abc", route{kind: RouteLogout, arg: "unireg_abc"}},
		{"tokens", "/-/npm/v1/tokens", route{kind: RouteTokens}},
		{"token by key", "/-/npm/v1/tokens/token/abcdef12", route{kind: RouteToken, arg: "abcdef12"}},
		{"dist-tags", "/-/package/lodash/dist-tags", route{kind: RouteDistTags, pkg: "lodash"}},
		{"dist-tag", "/-/package/lodash/dist-tags/beta", route{kind: RouteDistTag, pkg: "lodash", arg: "beta"}},
		{"scoped dist-tags escaped", "/-/package/@acme%2fx/dist-tags", route{kind: RouteDistTags, pkg: "@acme/x"}},
		{"scoped dist-tags upper escape", "/-/package/@acme%2Fx/dist-tags", route{kind: RouteDistTags, pkg: "@acme/x"}},
		{"scoped dist-tags plain", "/-/package/@acme/x/dist-tags", route{kind: RouteDistTags, pkg: "@acme/x"}},
		{"scoped dist-tag escaped", "/-/package/@acme%2fx/dist-tags/beta", route{kind: RouteDistTag, pkg: "@acme/x", arg: "beta"}},
		{"scoped dist-tag plain", "/-/package/@acme/x/dist-tags/beta", route{kind: RouteDistTag, pkg: "@acme/x", arg: "beta"}},
		{"bulk advisories", "/-/npm/v1/security/advisories/bulk", route{kind: RouteAudit, arg: "advisories/bulk"}},
		{"quick audit", "/-/npm/v1/security/audits/quick", route{kind: RouteAudit, arg: "audits/quick"}},
		{"yarn audit", "/-/npm/v1/security/audits", route{kind: RouteAudit, arg: "audits"}},
		{"legacy name", "/JSONStream", route{kind: RoutePackument, pkg: "JSONStream"}},
		{"legacy name tarball", "/JSONStream/-/JSONStream-1.3.5.tgz", route{kind: RouteTarball, pkg: "JSONStream", arg: "JSONStream-1.3.5.tgz"}},
		{"dist-tag like a range", "/-/package/lodash/dist-tags/1.x", route{kind: RouteDistTag, pkg: "lodash", arg: "1.x"}},
		{"stars", "/-/_view/starredByUser", route{kind: RouteStars}},
		{"visibility", "/-/package/@acme%2fx/visibility", route{kind: RouteVisibility, pkg: "@acme/x"}},
		{"collaborators", "/-/package/@acme/x/collaborators", route{kind: RouteUnsupported, pkg: "@acme/x", arg: unsupportedCollaborators}},
		{"access", "/-/package/x/access", route{kind: RouteUnsupported, pkg: "x", arg: unsupportedAccess}},
		{"org packages", "/-/org/acme/package", route{kind: RouteOrgPackages, arg: "acme"}},
		{"user packages", "/-/user/bob/package", route{kind: RouteUserPackages, arg: "bob"}},
		{"logout of a token named package", "/-/user/token/package", route{kind: RouteLogout, arg: "package"}},
		{"profile", "/-/npm/v1/user", route{kind: RouteProfile}},
		{"org members", "/-/org/acme/user", route{kind: RouteUnsupported, arg: unsupportedOrg}},
		{"org teams", "/-/org/acme/team", route{kind: RouteUnsupported, arg: unsupportedTeam}},
		{"team", "/-/team/acme/devs", route{kind: RouteUnsupported, arg: unsupportedTeam}},
		{"team members", "/-/team/acme/devs/user", route{kind: RouteUnsupported, arg: unsupportedTeam}},
		{"team packages", "/-/team/acme/devs/package", route{kind: RouteUnsupported, arg: unsupportedTeamPackages}},
		{"trust", "/-/package/@acme%2fx/trust", route{kind: RouteUnsupported, pkg: "@acme/x", arg: unsupportedTrust}},
		{"trust by id", "/-/package/@acme/x/trust/abc", route{kind: RouteUnsupported, pkg: "@acme/x", arg: unsupportedTrust}},
		{"stage list", "/-/stage", route{kind: RouteUnsupported, arg: unsupportedStage}},
		{"stage publish", "/-/stage/package/@acme%2fx", route{kind: RouteUnsupported, arg: unsupportedStage}},
		{"root", "/", route{kind: RouteUnknownNPM}},
		{"empty", "", route{kind: RouteUnknownNPM}},
		{"unknown special", "/-/nope", route{kind: RouteUnknownNPM}},
		{"special without endpoint", "/-", route{kind: RouteUnknownNPM}},
		{"token without key", "/-/npm/v1/tokens/token", route{kind: RouteUnknownNPM}},
		{"token with extra segment", "/-/npm/v1/tokens/token/a/b", route{kind: RouteUnknownNPM}},
		{"user without couchdb prefix", "/-/user/bob", route{kind: RouteUnknownNPM}},
		{"logout without token", "/-/user/token", route{kind: RouteUnknownNPM}},
		{"package owners", "/-/package/lodash/owners", route{kind: RouteUnknownNPM, pkg: "lodash"}},
		{"too deep below a package", "/lodash/1.0.0/extra", route{kind: RouteUnknownNPM, pkg: "lodash"}},
		{"tarball too deep", "/lodash/-/a/b", route{kind: RouteUnknownNPM, pkg: "lodash"}},
		{"bad escape", "/%zz", route{kind: RouteUnknownNPM}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parsePath(tt.path)
			if got.nameErr != nil {
				t.Fatalf("parsePath(%q) name error: %v", tt.path, got.nameErr)
			}
			got.nameErr = nil
			if got != tt.want {
				t.Fatalf("parsePath(%q) = %+v, want %+v", tt.path, got, tt.want)
			}
			if k := RouteOf(tt.path); k != tt.want.kind {
				t.Fatalf("RouteOf(%q) = %q, want %q", tt.path, k, tt.want.kind)
			}
		})
	}
}

func TestParsePathFlagsInvalidPackageNames(t *testing.T) {
	tests := []struct {
		path string
		kind string
	}{
		{"/_lodash", RoutePackument},
		{"/@Acme%2fx", RoutePackument},
		{"/.hidden/1.0.0", RouteVersion},
		{"/foo%2fbar", RoutePackument},
		{"/@acme", RoutePackument},
		{"/-/package/-dash/dist-tags", RouteDistTags},
		{"/-/package/@acme/dist-tags", RouteDistTags},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got := parsePath(tt.path)
			if got.nameErr == nil {
				t.Fatalf("parsePath(%q) accepted the name %q", tt.path, got.pkg)
			}
			if got.kind != tt.kind {
				t.Fatalf("parsePath(%q).kind = %q, want %q", tt.path, got.kind, tt.kind)
			}
		})
	}
}

func TestValidNameAcceptsNpmNames(t *testing.T) {
	for _, name := range []string{
		"lodash", "a", "0", "react-dom", "lodash.merge", "a_b", "x~y", "node-modules",
		"@acme/x", "@a/b", "@types/node", "@acme-corp/x.y_z", "@0/0", "@acme/_x", "@acme/-x",
		"@acme/node_modules", "http", "fs",
		strings.Repeat("a", 214),
		"@acme/" + strings.Repeat("a", 214-len("@acme/")),
		// Names the public registry keeps serving for old packages
		// (validate-npm-package-name's validForOldPackages).
		"JSONStream", "Base64", "CSSselect", "@acme/JSONStream", "a!b", "a'b", "a(b)", "a*b", "A~B",
	} {
		t.Run(name, func(t *testing.T) {
			if err := ValidName(name); err != nil {
				t.Fatalf("ValidName(%q) = %v, want nil", name, err)
			}
		})
	}
}

func TestValidNameRefusesWithReason(t *testing.T) {
	tests := []struct {
		name string
		want string
	}{
		{"", "empty"},
		{strings.Repeat("a", 215), "longer than 214"},
		{"@acme/" + strings.Repeat("a", 215-len("@acme/")), "longer than 214"},
		{".hidden", "must not start with . - or _"},
		{"_private", "must not start with . - or _"},
		{"-dash", "must not start with . - or _"},
		{"has space", "may contain only"},
		{" lead", "leading or trailing spaces"},
		{"trail ", "leading or trailing spaces"},
		{"a/b", "contains a slash"},
		{"@acme/x/y", "contains a slash"},
		{"@acme", "must look like @scope/name"},
		{"@acme/", "must look like @scope/name"},
		{"@/x", "scope"},
		{"@Acme/x", "scope"},
		{"@.acme/x", "scope"},
		{"@acme/.x", "must not start with ."},
		{"node_modules", "reserved"},
		{"Node_Modules", "reserved"},
		{"favicon.ico", "reserved"},
		{"a:b", "may contain only"},
		{"a%20b", "may contain only"},
		{"a@b", "may contain only"},
		{"a\\b", "may contain only"},
		{"ünicode", "may contain only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidName(tt.name)
			if err == nil {
				t.Fatalf("ValidName(%q) = nil, want an error", tt.name)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ValidName(%q) = %q, want it to mention %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestTarballFileNameDropsScope(t *testing.T) {
	tests := []struct{ name, version, want string }{
		{"lodash", "1.0.0", "lodash-1.0.0.tgz"},
		{"@acme/x", "2.0.0-beta.1", "x-2.0.0-beta.1.tgz"},
	}
	for _, tt := range tests {
		if got := tarballFileName(tt.name, tt.version); got != tt.want {
			t.Errorf("tarballFileName(%q, %q) = %q, want %q", tt.name, tt.version, got, tt.want)
		}
	}
}

func TestEscapeNameUsesLowerCaseSlashEscape(t *testing.T) {
	tests := []struct{ name, want string }{
		{"lodash", "lodash"},
		{"@acme/x", "@acme%2fx"},
	}
	for _, tt := range tests {
		if got := escapeName(tt.name); got != tt.want {
			t.Errorf("escapeName(%q) = %q, want %q", tt.name, got, tt.want)
		}
		if r := parsePath("/" + escapeName(tt.name)); r.pkg != tt.name {
			t.Errorf("parsePath(escapeName(%q)).pkg = %q", tt.name, r.pkg)
		}
	}
}

func TestValidVersionAndTag(t *testing.T) {
	versions := []struct {
		v    string
		want bool
	}{
		{"1.0.0", true}, {"0.0.0", true}, {"1.2.3-beta.1", true}, {"1.2.3+build.5", true},
		{"1.0", false}, {"v1.0.0", false}, {"01.0.0", false}, {"1.0.0-", false}, {"", false}, {"latest", false},
	}
	for _, tt := range versions {
		if got := validVersion(tt.v); got != tt.want {
			t.Errorf("validVersion(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
	tags := []struct {
		tag  string
		want bool
	}{
		{"latest", true}, {"beta", true}, {"next-2", true}, {"v1.x", true},
		// What the public registry holds: ranges npm resolves as ranges
		// (brace-expansion@1 publishes with tag 1.x), anything not a version.
		{"1.x", true}, {"2.x", true}, {"1", true}, {"1.2", true}, {"v1", true}, {"V1.0.0", true}, {"1.2.3.4", true},
		{"-x", true}, {"next!", true}, {"a~b", true}, {strings.Repeat("a", 256), true},
		// What npm would take as a version (semver.valid in loose mode).
		{"1.0.0", false}, {"1.0.0-beta.1", false}, {"v1.0.0", false}, {"01.0.0", false}, {"1.0.0beta", false},
		{"v1.2.3-rc.1", false}, {"1.0.0-x.01", false}, {"vv1.0.0", false}, {"1.0.0-.a", false}, {"v01.02.03", false},
		{"1.0.0-a..b", true},
		// Nothing npm cannot address as pkg@tag.
		{"", false}, {"a/b", false}, {"a b", false}, {" x", false}, {"^1.0.0", false}, {">=1", false}, {"a@b", false},
		{"a:b", false}, {"ü", false}, {strings.Repeat("a", 257), false},
	}
	for _, tt := range tags {
		if got := validTag(tt.tag); got != tt.want {
			t.Errorf("validTag(%q) = %v, want %v", tt.tag, got, tt.want)
		}
	}
}
