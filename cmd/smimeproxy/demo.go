package main

import "context"

func runDemo(_ context.Context, s stdio, _ []string) int {
	return notAvailable(s, "demo")
}
