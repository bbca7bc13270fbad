// Package nodemirror is the contract between the operator and the node
// mirror agent (`manager node-mirror`, run by a Registry's
// `<name>-node-mirror` DaemonSet), and the agent's file work on the node.
//
// # The contract
//
// The operator writes a Config as JSON under the key ConfigFile of a
// ConfigMap the DaemonSet mounts (a whole-volume mount, not subPath, so a
// change reaches running pods; the agent reads it again before every
// apply). Host.CA is PEM; encoding/json carries it as base64.
//
//	{"owner": "team-a/cache",
//	 "hostsDir": "/etc/containerd/certs.d",
//	 "hosts": [
//	   {"name": "docker.io", "server": "https://registry-1.docker.io", "mirror": "http://10.0.0.10:5000"},
//	   {"name": "10.0.0.10:5000", "mirror": "http://10.0.0.10:5000"}]}
//
// The DaemonSet mounts the node's HostsDir (containerd's config_path) at a
// directory of its own (the agent's --write-dir, e.g. /host/certs.d). For
// each Host the agent writes <write-dir>/<Name>/hosts.toml (Render), and
// <write-dir>/<Name>/unireg-ca.crt when CA is set; hosts.toml names the CA
// by its path on the node (<HostsDir>/<Name>/unireg-ca.crt), which is what
// containerd opens. A Name with a port is a host:port directory, as
// containerd looks them up on Unix (it tries host_port_ first in newer
// releases, then host:port, then _default).
//
// # Ownership
//
// The first line of every hosts.toml the agent writes is
//
//	# Written by unireg node-mirror for <Owner>. Do not edit: the operator rewrites and removes this file.
//
// and that line is the only record of ownership: nothing else is kept on
// the node or in the cluster. Apply
//   - writes a hosts.toml only where there is none, or where the one there
//     starts with this Owner's line; anything else (a file an administrator
//     wrote, another Registry's, a symbolic link, a directory) is a
//     conflict: left byte for byte as it is and reported;
//   - skips a write whose content is already there, so a steady state
//     writes nothing, and rewrites a file of its own that was edited;
//   - removes, in every directory directly under write-dir, a hosts.toml
//     that starts with this Owner's line but whose directory is no longer
//     a Host, then its unireg-ca.crt, then the directory if it is empty
//     (a directory holding anything else is kept);
//   - never follows a symbolic link: every path is opened beneath
//     write-dir (os.Root), and a link where a directory or file of ours
//     would be is a conflict.
//
// Cleanup is Apply with no hosts: it removes exactly this Owner's files.
//
// # Validation
//
// A Config is checked whole before anything is written (Config.Validate):
// Owner is <namespace>/<name> (lower-case DNS names), HostsDir a clean
// absolute path, each Name a host name, host:port, IP:port or [IPv6]:port
// (so never a path: no "/", no ".."), unique; Server and Mirror are
// http(s)://host[:port] URLs (Server may carry a path), and CA holds PEM
// CERTIFICATE blocks only (a private key pasted by mistake must not land
// on every node). A Config that fails is refused with an error and nothing
// is written or removed.
//
// # Readiness
//
// The agent writes "ok" to its --ready-file after an apply with no error
// and no conflict; otherwise it removes that file and writes the reason to
// <ready-file>.why, which `manager node-mirror-probe` (the readiness probe)
// prints, so kubelet puts it into the pod's events. A NodeMirrorReady
// condition can count the DaemonSet's ready pods. SIGTERM stops the agent
// without removing anything: a rolling update must not unconfigure nodes.
// To unconfigure, the operator rolls the DaemonSet to --cleanup, where the
// agent removes this Owner's files and then reports ready, and deletes the
// DaemonSet once every pod is ready. A node that is down then keeps its
// files until it comes back and a cleanup pod runs on it; once the
// DaemonSet is gone nothing removes them (containerd then falls back to
// each hosts.toml's server, the upstream, after the mirror refuses).
package nodemirror
