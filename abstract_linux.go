package sluice

// abstractUnixSockets reports whether Unix socket addresses may name the
// abstract namespace ("@name", unix(7)): Linux has it.
const abstractUnixSockets = true
