-- Times are Unix microseconds (UTC); mailboxes are stored lower-cased.

CREATE TABLE identities (
	id               TEXT PRIMARY KEY,
	email            TEXT NOT NULL,
	name             TEXT NOT NULL,
	state            TEXT NOT NULL CHECK (state IN ('pending_trust', 'active', 'revoked')),
	master_key_wrap  BYTEA,
	root_fingerprint TEXT NOT NULL DEFAULT '',
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL
);
-- At most one Digital ID per mailbox that is not revoked.
CREATE UNIQUE INDEX identities_live_email ON identities (email) WHERE state <> 'revoked';
CREATE INDEX identities_email ON identities (email);

CREATE TABLE identity_keys (
	seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id          TEXT NOT NULL UNIQUE,
	identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
	purpose     TEXT NOT NULL CHECK (purpose IN ('sign', 'encrypt')),
	cert_der    BYTEA NOT NULL,
	sealed_key  BYTEA,
	serial      TEXT NOT NULL,
	not_after   BIGINT NOT NULL,
	status      TEXT NOT NULL CHECK (status IN ('current', 'superseded', 'revoked')),
	created_at  BIGINT NOT NULL
);
CREATE INDEX identity_keys_identity ON identity_keys (identity_id, purpose, created_at);

CREATE TABLE escrow (
	key_id     TEXT PRIMARY KEY REFERENCES identity_keys (id) ON DELETE CASCADE,
	envelope   BYTEA NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE tokens (
	hash       BYTEA PRIMARY KEY,
	email      TEXT NOT NULL,
	purpose    TEXT NOT NULL CHECK (purpose IN ('enroll', 'recover')),
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at    BIGINT,
	used_by    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX tokens_expires ON tokens (expires_at);
CREATE INDEX tokens_email ON tokens (email);

CREATE TABLE directory (
	owner        TEXT NOT NULL,
	fingerprint  TEXT NOT NULL,
	email        TEXT NOT NULL,
	cert_der     BYTEA NOT NULL,
	source       TEXT NOT NULL CHECK (source IN ('enrolled', 'harvested', 'imported')),
	capabilities BYTEA,
	first_seen   BIGINT NOT NULL,
	last_seen    BIGINT NOT NULL,
	PRIMARY KEY (owner, fingerprint)
);
CREATE INDEX directory_email ON directory (email);

CREATE TABLE trust_roots (
	scope       TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	cert_der    BYTEA NOT NULL,
	accepted_at BIGINT NOT NULL,
	PRIMARY KEY (scope, fingerprint)
);

CREATE TABLE upgrades (
	email      TEXT PRIMARY KEY,
	state      TEXT NOT NULL CHECK (state IN ('pending', 'done', 'canceled')),
	updated_at BIGINT NOT NULL
);

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value BYTEA NOT NULL
);

CREATE TABLE audit (
	seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at      BIGINT NOT NULL,
	actor   TEXT NOT NULL,
	action  TEXT NOT NULL,
	subject TEXT NOT NULL
);
CREATE INDEX audit_subject ON audit (subject);
