package sluice

// Helpers for the external test package (sluice_test), as the standard
// library's export_test.go files give theirs: they exist only in test builds.

// ReadSide is readSide, for BenchmarkLines.
var ReadSide = readSide

// TimedOpts is timedOpts, for BenchmarkLines.
var TimedOpts = timedOpts
