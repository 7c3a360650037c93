-- Files to remove from shared storage because what owned them was deleted (a tenant, a user).
-- Written in the same transaction as the delete, so the intent replicates and survives restarts;
-- a background sweep removes the files, then the row.
CREATE TABLE storage_tombstones (
    id         uuid PRIMARY KEY,
    prefix     text NOT NULL,                  -- "<tenant-id>/" or "<tenant-id>/voicemail/<ext>/"
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
