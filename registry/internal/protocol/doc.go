// Package protocol is what every protocol handler of the registry needs,
// written once: who the caller is and whether they may act (Guard, Call,
// in caller.go), admission of upload bodies (Uploads), the answer to errors
// that are not the protocol's own (Classify, ErrorAs, Disabled), serving
// stored content (Call.ServeObject), write events (Emit), conditional GETs
// (ETagMatches), the externally visible base URL (BaseURL) and the route
// a request is reported under (Guard.ReportRoute). A protocol package
// (registry/oci, registry/npm, and the next one) keeps only its wire
// format: its paths, its documents and how its errors are written. This
// package sits below the protocols and above registry/auth, limit, storage
// and requestlog; it imports no protocol.
package protocol
