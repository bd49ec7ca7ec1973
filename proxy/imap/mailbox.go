package imap

import (
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
)

// The client's view of the selected mailbox equals the upstream's: the
// proxy passes sequence numbers unchanged, and forwards the upstream's
// unilateral EXISTS, EXPUNGE and FETCH (flags) responses in the order they
// arrived, after the client's command completes or during IDLE. This
// relies on the upstream following RFC 3501 §7.4.1 (no EXPUNGE while a
// FETCH, STORE or SEARCH by sequence number runs); imapserver likewise
// holds EXPUNGE back after those commands.

func (s *session) unilateralHandler() *imapclient.UnilateralDataHandler {
	return &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { s.enqueue(update{expunge: seq}) },
		Mailbox: func(data *imapclient.UnilateralDataMailbox) {
			if data.NumMessages != nil {
				n := *data.NumMessages
				s.enqueue(update{exists: &n})
			}
			if data.Flags != nil {
				s.enqueue(update{mailboxFlags: data.Flags})
			}
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			buf, err := msg.Collect()
			if err != nil || buf.Flags == nil {
				return
			}
			s.enqueue(update{fetchSeq: buf.SeqNum, fetchUID: buf.UID, fetchFlags: buf.Flags})
		},
	}
}

func (s *session) enqueue(u update) {
	s.mu.Lock()
	s.queue = append(s.queue, u)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// flush writes queued updates; without allowExpunge it stops before the
// first EXPUNGE (which keeps its place in the queue).
func (s *session) flush(w *imapserver.UpdateWriter, allowExpunge bool) error {
	s.mu.Lock()
	var out []update
	i := 0
	for ; i < len(s.queue); i++ {
		if s.queue[i].expunge != 0 && !allowExpunge {
			break
		}
		out = append(out, s.queue[i])
	}
	s.queue = append([]update(nil), s.queue[i:]...)
	s.mu.Unlock()
	for _, u := range out {
		var err error
		switch {
		case u.expunge != 0:
			err = w.WriteExpunge(u.expunge)
		case u.exists != nil:
			err = w.WriteNumMessages(*u.exists)
		case u.mailboxFlags != nil:
			err = w.WriteMailboxFlags(u.mailboxFlags)
		case u.fetchSeq != 0:
			err = w.WriteMessageFlags(u.fetchSeq, u.fetchUID, u.fetchFlags)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *session) dropQueue() {
	s.mu.Lock()
	s.queue = nil
	s.mu.Unlock()
}

func (s *session) Select(mailbox string, options *imap.SelectOptions) (*imap.SelectData, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	s.mailbox, s.uidValidity = "", 0
	data, err := c.Select(mailbox, options).Wait()
	// Updates of the previous mailbox mean nothing to the client now.
	s.dropQueue()
	if err != nil {
		return nil, s.fail("SELECT", err)
	}
	s.mailbox, s.uidValidity = mailbox, data.UIDValidity
	s.examined = options != nil && options.ReadOnly
	return data, nil
}

func (s *session) Unselect() error {
	c, err := s.client()
	if err != nil {
		return err
	}
	if err := c.Unselect().Wait(); err != nil {
		return s.fail("UNSELECT", err)
	}
	s.mailbox, s.uidValidity = "", 0
	s.dropQueue()
	return nil
}

// Poll runs after every command. When the command did not reach the
// upstream (NOOP, CHECK, CAPABILITY), it asks the upstream with a NOOP so
// a client polling for new mail sees it.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.up != nil && (!s.talked || isClosed(s.up)) {
		talked := s.talked
		c, err := s.client() // says BYE when the upstream is gone
		if err != nil {
			return nil
		}
		if !talked {
			if err := c.Noop().Wait(); err != nil {
				return s.fail("NOOP", err)
			}
		}
	}
	s.talked = false
	return s.flush(w, allowExpunge)
}

// Idle holds an upstream IDLE open and forwards what it reports.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	if err := s.flush(w, true); err != nil {
		return err
	}
	cmd, err := c.Idle()
	if err != nil {
		return s.fail("IDLE", err)
	}
	// A long wait in IDLE is legitimate; the keepalive ends and restarts
	// it now and then, and each restart is a command the watchdog bounds.
	s.watch.disarm()
	keep := time.NewTicker(s.p.opts.IdleKeepalive)
	defer keep.Stop()
	for {
		select {
		case <-keep.C:
			s.watch.arm()
			err := cmd.Close()
			if err == nil {
				err = cmd.Wait()
			}
			if err == nil {
				cmd, err = c.Idle()
			}
			if err != nil {
				return s.idleLost(s.fail("IDLE", err))
			}
			s.watch.disarm()
		case <-s.notify:
			if err := s.flush(w, true); err != nil {
				cmd.Close()
				return err
			}
		case <-c.Closed():
			s.log.Warn("upstream connection closed during IDLE")
			return s.idleLost(s.unavailable())
		case <-stop:
			s.watch.arm()
			if err := cmd.Close(); err != nil {
				return s.fail("IDLE", err)
			}
			if err := cmd.Wait(); err != nil {
				return s.fail("IDLE", err)
			}
			return s.flush(w, true)
		}
	}
}

// idleLost ends a client's IDLE whose upstream is gone: imapserver
// delivers Idle's result only after the client's DONE, so the client is
// told with BYE now instead of idling on a dead connection.
func (s *session) idleLost(err error) error {
	s.conn.Bye("Connection to the mail server lost; reconnect (session " + s.id + ")")
	return err
}

func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	var cmd *imapclient.ExpungeCommand
	if uids != nil {
		cmd = c.UIDExpunge(*uids)
	} else {
		cmd = c.Expunge()
	}
	// Earlier updates go first so sequence numbers stay in step.
	for seq := cmd.Next(); seq != 0; seq = cmd.Next() {
		if err := w.WriteExpunge(seq); err != nil {
			cmd.Close()
			return err
		}
	}
	if err := cmd.Close(); err != nil {
		return s.fail("EXPUNGE", err)
	}
	return nil
}

// Search passes on unchanged. The upstream searches what it stores: text
// criteria (BODY, TEXT, SUBJECT of an encrypted message's inner header)
// cannot match the plaintext of encrypted mail.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	var cmd *imapclient.SearchCommand
	if kind == imapserver.NumKindUID {
		cmd = c.UIDSearch(criteria, options)
	} else {
		cmd = c.Search(criteria, options)
	}
	data, err := cmd.Wait()
	if err != nil {
		return nil, s.fail("SEARCH", err)
	}
	return data, nil
}

func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	cmd := c.Store(numSet, flags, options)
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		buf, err := msg.Collect()
		if err != nil {
			cmd.Close()
			return s.fail("STORE", err)
		}
		rw := w.CreateMessage(buf.SeqNum)
		if buf.UID != 0 {
			rw.WriteUID(buf.UID)
		}
		if buf.Flags != nil {
			rw.WriteFlags(buf.Flags)
		}
		if err := rw.Close(); err != nil {
			cmd.Close()
			return err
		}
	}
	if err := cmd.Close(); err != nil {
		return s.fail("STORE", err)
	}
	return nil
}

func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	data, err := c.Copy(numSet, dest).Wait()
	if err != nil {
		return nil, s.fail("COPY", err)
	}
	if data.UIDValidity == 0 {
		return nil, nil // the upstream has no UIDPLUS: no COPYUID to pass on
	}
	return data, nil
}

// Move uses the upstream's MOVE; the EXPUNGEs it sends arrive as
// unilateral data and reach the client through Poll right after the
// COPYUID. Without MOVE upstream, COPY + STORE \Deleted + EXPUNGE.
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	if !c.Caps().Has(imap.CapMove) && !c.Caps().Has(imap.CapIMAP4rev2) {
		return s.moveFallback(c, w, numSet, dest)
	}
	data, err := c.Move(numSet, dest).Wait()
	if err != nil {
		return s.fail("MOVE", err)
	}
	src, ok1 := data.SourceUIDs.(imap.UIDSet)
	dst, ok2 := data.DestUIDs.(imap.UIDSet)
	if data.UIDValidity != 0 && ok1 && ok2 {
		if err := w.WriteCopyData(&imap.CopyData{UIDValidity: data.UIDValidity, SourceUIDs: src, DestUIDs: dst}); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) moveFallback(c *imapclient.Client, w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	data, err := c.Copy(numSet, dest).Wait()
	if err != nil {
		return s.fail("MOVE", err)
	}
	if data.UIDValidity != 0 {
		if err := w.WriteCopyData(data); err != nil {
			return err
		}
	}
	store := c.Store(numSet, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil)
	if err := store.Close(); err != nil {
		return s.fail("MOVE", err)
	}
	var cmd *imapclient.ExpungeCommand
	if uids, ok := numSet.(imap.UIDSet); ok && c.Caps().Has(imap.CapUIDPlus) {
		cmd = c.UIDExpunge(uids)
	} else {
		cmd = c.Expunge()
	}
	for seq := cmd.Next(); seq != 0; seq = cmd.Next() {
		if err := w.WriteExpunge(seq); err != nil {
			cmd.Close()
			return err
		}
	}
	if err := cmd.Close(); err != nil {
		return s.fail("MOVE", err)
	}
	return nil
}
