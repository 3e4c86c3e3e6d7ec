-- The web console's browser sessions, shared by every node of the room: the SHA-256 of each
-- session's id (never the id, which only the browser's cookie holds), whose party and token it
-- was opened with, its CSRF token and when it expires.
CREATE TABLE console_sessions (
    id_sha256   TEXT NOT NULL PRIMARY KEY,
    party       TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_id    TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
