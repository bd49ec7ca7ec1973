package identity

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"smimeproxy/crypto/ca"
	"smimeproxy/store/sqlite"
)

// Environment of the crashing child process.
const (
	crashDBEnv    = "IDENTITY_CRASH_DB"
	crashCAEnv    = "IDENTITY_CRASH_CA"
	crashTokenEnv = "IDENTITY_CRASH_TOKEN"
)

// TestCrashMidEnrolment kills a process in the middle of an enrolment
// transaction (after the token was consumed and the ID inserted, before
// the commit), then reopens the database: no half-made Digital ID, and the
// token still redeemable.
func TestCrashMidEnrolment(t *testing.T) {
	if os.Getenv(crashDBEnv) != "" {
		t.Skip("running as the crashing child")
	}
	st, path := openSQLite(t)
	f := newFixture(t, storeRecords{st})
	const alice = "alice@example.test"
	tok := f.token(t, alice, PurposeEnroll)
	f.svc.Close()
	st.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDBEnv+"="+path, crashCAEnv+"="+f.caDir, crashTokenEnv+"="+string(tok))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL mid-enrolment: %v\n%s", err, out)
	}

	st2, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer st2.Close()
	f2 := newFixture(t, storeRecords{st2})
	ctx := context.Background()
	if ids, _ := f2.rec.Identities(ctx); len(ids) != 0 {
		t.Fatalf("a half-made Digital ID survived the crash: %+v", ids)
	}
	if _, err := f2.svc.Enroll(ctx, EnrollRequest{Email: alice, Token: tok, Name: "Alice", Password: "correct horse"}); err != nil {
		t.Fatalf("token after the crash: %v", err)
	}
}

// TestCrashChild is the child of TestCrashMidEnrolment: it enrols and
// kills itself inside the transaction.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashDBEnv)
	if path == "" {
		t.Skip("only run as a child of TestCrashMidEnrolment")
	}
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Open(os.Getenv(crashCAEnv), ca.Options{Org: "Identity Test Org"})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := newService(storeRecords{st}, Options{CA: c, Upstream: fakeAuth{}, KeyType: ca.KeyP256, Seal: testSeal})
	if err != nil {
		t.Fatal(err)
	}
	svc.hook = func(step string) error {
		if step == "insert key" {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
		return nil
	}
	_, err = svc.Enroll(context.Background(), EnrollRequest{Email: "alice@example.test", Token: Secret(os.Getenv(crashTokenEnv)), Name: "Alice", Password: "correct horse"})
	t.Fatalf("enrolment returned (%v) instead of dying", err)
}
