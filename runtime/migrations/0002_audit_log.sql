-- The audit log: entries in append order, each with its Merkle leaf hash and the room's
-- signature over the tree head that includes it; and the tree's right edge for O(log n) appends.

CREATE TABLE audit_entries (
    idx                  BIGINT  NOT NULL PRIMARY KEY,
    entry                TEXT    NOT NULL,   -- canonical JSON
    leaf_hash            BLOB    NOT NULL,
    tree_head_signature  TEXT    NOT NULL    -- signed-note signature over the checkpoint of size idx + 1
);

CREATE TABLE audit_frontier (
    id     INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    size   BIGINT  NOT NULL,
    nodes  BLOB    NOT NULL
);
