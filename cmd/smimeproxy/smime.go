package main

import "context"

func runSmime(ctx context.Context, s stdio, args []string) int {
	return dispatch(ctx, s, "smimeproxy smime", map[string]command{
		"sign":    {"sign a message (multipart/signed, or opaque with -opaque)", runSmimeSign},
		"verify":  {"verify a signed message against trusted roots", runSmimeVerify},
		"encrypt": {"encrypt a message to one or more certificates", runSmimeEncrypt},
		"decrypt": {"decrypt a message with a certificate and key", runSmimeDecrypt},
	}, args)
}
