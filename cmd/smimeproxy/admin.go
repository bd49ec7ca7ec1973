package main

import "context"

func runAdmin(_ context.Context, s stdio, _ []string) int {
	return notAvailable(s, "admin")
}
