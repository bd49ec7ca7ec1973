package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

func runVersion(_ context.Context, s stdio, _ []string) int {
	fmt.Fprintln(s.out, versionString())
	return exitOK
}

// versionString reports the module version and VCS revision recorded by
// the Go toolchain in the binary's build information.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "smimeproxy (no build information)"
	}
	return formatVersion(bi)
}

// formatVersion is versionString for given build information:
// "smimeproxy VERSION revision REV[+dirty][ TIME] GOVERSION".
func formatVersion(bi *debug.BuildInfo) string {
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	rev, when, dirty := "unknown", "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	return fmt.Sprintf("smimeproxy %s revision %s%s%s %s", version, rev, dirty, when, bi.GoVersion)
}
