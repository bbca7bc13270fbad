package npm

import (
	"net/url"
	"strings"
)

// Route kinds of the npm API, also used as metric labels.
const (
	RoutePing       = "ping"
	RouteWhoami     = "whoami"
	RouteSearch     = "search"
	RouteLogin      = "login"
	RouteUser       = "user"
	RouteLogout     = "logout"
	RouteTokens     = "tokens"
	RouteToken      = "token"
	RouteDistTags   = "dist_tags"
	RouteDistTag    = "dist_tag"
	RouteAudit      = "audit"
	RouteKeys       = "keys"
	RoutePackument  = "packument"
	RoutePackageRev = "packument_rev"
	RouteTarball    = "tarball"
	RouteTarballRev = "tarball_rev"
	RouteVersion    = "version"
	// The account commands (account.go): npm stars, npm access get status
	// and list packages, npm profile get, and the ones answered with why
	// they are not supported (the route's arg names which).
	RouteStars        = "stars"
	RouteVisibility   = "visibility"
	RouteOrgPackages  = "org_packages"
	RouteUserPackages = "user_packages"
	RouteProfile      = "profile"
	RouteUnsupported  = "unsupported"
	RouteUnknownNPM   = "unknown"
)

// The commands a RouteUnsupported names in its arg.
const (
	unsupportedOrg           = "org"
	unsupportedTeam          = "team"
	unsupportedTeamPackages  = "team_packages"
	unsupportedCollaborators = "collaborators"
	unsupportedAccess        = "access"
	unsupportedTrust         = "trust"
	unsupportedStage         = "stage"
)

// route is a parsed request path below the npm prefix.
type route struct {
	kind    string
	pkg     string // package name, decoded
	arg     string // version, tag, file name, user, token key
	rev     string
	nameErr error
}

// parsePath reads the escaped path (scoped names arrive as @scope%2fname,
// @scope%2Fname or @scope/name; Go's URL.Path would hide the difference).
func parsePath(escaped string) route {
	raw := strings.Split(strings.Trim(escaped, "/"), "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		d, err := url.PathUnescape(s)
		if err != nil {
			return route{kind: RouteUnknownNPM}
		}
		segs[i] = d
	}
	if len(segs) > 0 && segs[0] == "-" {
		return parseSpecial(segs[1:])
	}
	// The package name: one segment, or two when a scope is written with a
	// plain slash.
	if len(segs) == 0 || segs[0] == "" {
		return route{kind: RouteUnknownNPM}
	}
	name, rest := segs[0], segs[1:]
	if strings.HasPrefix(name, "@") && !strings.Contains(name, "/") && len(rest) > 0 {
		name, rest = name+"/"+rest[0], rest[1:]
	}
	r := route{pkg: name, nameErr: ValidName(name)}
	switch {
	case len(rest) == 0:
		r.kind = RoutePackument
	case len(rest) == 2 && rest[0] == "-rev":
		r.kind, r.rev = RoutePackageRev, rest[1]
	case len(rest) == 2 && rest[0] == "-":
		r.kind, r.arg = RouteTarball, rest[1]
	case len(rest) == 4 && rest[0] == "-" && rest[2] == "-rev":
		r.kind, r.arg, r.rev = RouteTarballRev, rest[1], rest[3]
	case len(rest) == 1:
		r.kind, r.arg = RouteVersion, rest[0]
	default:
		r.kind = RouteUnknownNPM
	}
	return r
}

// parseSpecial parses the /-/... endpoints.
func parseSpecial(segs []string) route {
	p := strings.Join(segs, "/")
	switch {
	case p == "ping":
		return route{kind: RoutePing}
	case p == "whoami":
		return route{kind: RouteWhoami}
	case p == "v1/search":
		return route{kind: RouteSearch}
	case p == "v1/login":
		return route{kind: RouteLogin}
	case p == "npm/v1/keys":
		return route{kind: RouteKeys}
	case p == "npm/v1/tokens":
		return route{kind: RouteTokens}
	case p == "npm/v1/user":
		return route{kind: RouteProfile}
	case p == "_view/starredByUser":
		return route{kind: RouteStars}
	case len(segs) == 3 && segs[0] == "org" && segs[2] == "package":
		return route{kind: RouteOrgPackages, arg: segs[1]}
	case len(segs) == 3 && segs[0] == "org" && segs[2] == "user":
		return route{kind: RouteUnsupported, arg: unsupportedOrg}
	case len(segs) == 3 && segs[0] == "org" && segs[2] == "team",
		len(segs) == 3 && segs[0] == "team",
		len(segs) == 4 && segs[0] == "team" && segs[3] == "user":
		return route{kind: RouteUnsupported, arg: unsupportedTeam}
	case len(segs) == 4 && segs[0] == "team" && segs[3] == "package":
		return route{kind: RouteUnsupported, arg: unsupportedTeamPackages}
	case len(segs) > 0 && segs[0] == "stage":
		return route{kind: RouteUnsupported, arg: unsupportedStage}
	case len(segs) == 3 && segs[0] == "user" && segs[1] != "token" && segs[2] == "package":
		return route{kind: RouteUserPackages, arg: segs[1]}
	case strings.HasPrefix(p, "npm/v1/tokens/token/") && len(segs) == 5:
		return route{kind: RouteToken, arg: segs[4]}
	case strings.HasPrefix(p, "npm/v1/security/"):
		return route{kind: RouteAudit, arg: strings.TrimPrefix(p, "npm/v1/security/")}
	case len(segs) == 2 && segs[0] == "user" && strings.HasPrefix(segs[1], "org.couchdb.user:"):
		return route{kind: RouteUser, arg: strings.TrimPrefix(segs[1], "org.couchdb.user:")}
	case len(segs) == 3 && segs[0] == "user" && segs[1] == "token":
		return route{kind: RouteLogout, arg: segs[2]}
	case len(segs) >= 3 && segs[0] == "package":
		// /-/package/<name>/dist-tags[/<tag>], /visibility, /collaborators,
		// /access and /trust[/<id>], the name possibly in two segments.
		name, rest := segs[1], segs[2:]
		if strings.HasPrefix(name, "@") && !strings.Contains(name, "/") && len(rest) > 1 {
			name, rest = name+"/"+rest[0], rest[1:]
		}
		r := route{pkg: name, nameErr: ValidName(name)}
		switch {
		case len(rest) == 1 && rest[0] == "dist-tags":
			r.kind = RouteDistTags
		case len(rest) == 2 && rest[0] == "dist-tags":
			r.kind, r.arg = RouteDistTag, rest[1]
		case len(rest) == 1 && rest[0] == "visibility":
			r.kind = RouteVisibility
		case len(rest) == 1 && rest[0] == "collaborators":
			r.kind, r.arg = RouteUnsupported, unsupportedCollaborators
		case len(rest) == 1 && rest[0] == "access":
			r.kind, r.arg = RouteUnsupported, unsupportedAccess
		case len(rest) <= 2 && rest[0] == "trust":
			r.kind, r.arg = RouteUnsupported, unsupportedTrust
		default:
			r.kind = RouteUnknownNPM
		}
		return r
	}
	return route{kind: RouteUnknownNPM}
}

// RouteOf names the npm route of an escaped path below the prefix, for metrics.
func RouteOf(escaped string) string { return parsePath(escaped).kind }
