package main

import "context"

func runSmimeDecrypt(_ context.Context, s stdio, _ []string) int {
	return notAvailable(s, "smime decrypt")
}
