package main

import "context"

func runSmimeVerify(_ context.Context, s stdio, _ []string) int {
	return notAvailable(s, "smime verify")
}
