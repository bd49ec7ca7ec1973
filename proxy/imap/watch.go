package imap

import (
	"net"
	"sync/atomic"
	"time"
)

// imapclient bounds an upstream response only once its first byte has
// arrived, so a silent upstream would hold a client's command forever.
// The watchdog closes the upstream connection when it has been silent for
// CommandTimeout while a command waits; the waiting command then fails
// with NO [UNAVAILABLE] and the next one gets BYE.

// watchConn is the upstream connection; it notes when bytes last arrived.
type watchConn struct {
	net.Conn
	last atomic.Int64 // unix nanoseconds of the last byte read
}

func (c *watchConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// watchdog bounds the upstream's silence while the session waits for it.
type watchdog struct {
	conn    *watchConn
	timeout time.Duration
	armed   atomic.Int64 // unix nanoseconds when a command started; 0: none waits
	fired   atomic.Bool
}

// arm marks that a command waits for the upstream from now on.
func (d *watchdog) arm() {
	if d != nil {
		d.armed.Store(time.Now().UnixNano())
	}
}

// disarm marks that nothing waits for the upstream: the client's command
// has been answered, or IDLE has started.
func (d *watchdog) disarm() {
	if d != nil {
		d.armed.Store(0)
	}
}

// expired reports whether the watchdog closed the connection.
func (d *watchdog) expired() bool { return d != nil && d.fired.Load() }

// run checks the silence until done is closed or it closes the connection.
func (d *watchdog) run(done <-chan struct{}) {
	tick := d.timeout / 8
	if tick < 5*time.Millisecond {
		tick = 5 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		since := d.armed.Load()
		if since == 0 {
			continue
		}
		since = max(since, d.conn.last.Load())
		if time.Since(time.Unix(0, since)) > d.timeout {
			d.fired.Store(true)
			d.conn.Close()
			return
		}
	}
}

// idleConn caps every read deadline the IMAP server sets on a client
// connection at IdleTimeout from now: imapserver waits up to 35 minutes
// for a client's next command or for the end of IDLE, and a client quiet
// for longer than IdleTimeout is disconnected instead.
//
// The long deadline also marks the moment a command has been answered
// and the server waits for the next one (or for DONE): onWait then tells
// the session that nothing waits for the upstream any more. Shorter
// deadlines (30 s for a command line, 5 min for a literal) are set in the
// middle of a command and leave it be.
type idleConn struct {
	net.Conn
	idle   time.Duration
	onWait func() // set by newSession; called on imapserver's goroutine
}

// betweenCommands is the shortest read deadline imapserver sets while
// waiting for a new command (35 min); mid-command ones are at most 5 min.
const betweenCommands = 10 * time.Minute

func (c *idleConn) SetReadDeadline(t time.Time) error {
	now := time.Now()
	if c.onWait != nil && (t.IsZero() || t.Sub(now) > betweenCommands) {
		c.onWait()
	}
	if limit := now.Add(c.idle); t.IsZero() || t.After(limit) {
		t = limit
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *idleConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// idleListener hands out idleConns.
type idleListener struct {
	net.Listener
	idle time.Duration
}

func (l idleListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &idleConn{Conn: c, idle: l.idle}, nil
}
