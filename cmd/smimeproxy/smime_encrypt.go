package main

import "context"

func runSmimeEncrypt(_ context.Context, s stdio, _ []string) int {
	return notAvailable(s, "smime encrypt")
}
