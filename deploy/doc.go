// Package deploy holds no code. Its folder has the files that run
// fieldsync (the stack, fault-suite and CI scripts, the production
// Compose file, container builds, systemd units, proxy and Prometheus
// configuration), and its tests check those files: that the Compose file
// loads with the compose-spec library and has the production topology,
// that the images build static binaries run by an unprivileged user, that
// the units are hardened, and that the alert rules name metrics fieldsyncd
// exports.
//
// Tests here may import any package of the module; nothing imports this
// package.
package deploy
