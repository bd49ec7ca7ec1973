package main

import "context"

func runConfig(_ context.Context, s stdio, _ []string) int {
	return notAvailable(s, "config")
}
