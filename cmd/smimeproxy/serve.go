package main

import "context"

func runServe(_ context.Context, s stdio, _ []string) int {
	return notAvailable(s, "serve")
}
