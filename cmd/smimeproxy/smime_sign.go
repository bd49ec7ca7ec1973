package main

import "context"

func runSmimeSign(_ context.Context, s stdio, _ []string) int {
	return notAvailable(s, "smime sign")
}
