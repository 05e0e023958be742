"""The one schema of a facetrail database, its version, and the forward migrations that upgrade old files.

Every table facetrail keeps is created here and nowhere else; stores only query
them. A ``schema_version`` table holds one row per applied migration (version,
description, time), so a file says which shape it has. :func:`migrate` runs when a
:class:`~core.storage.connection.Database` is first used: it applies, in one
transaction, every migration newer than the file's version, and refuses a file
written by a newer facetrail (:class:`SchemaError`) instead of guessing at it.

Files made before versioning (they have the tables but no ``schema_version``) are
upgraded by migration 1, whose statements are all ``CREATE ... IF NOT EXISTS``.
A migration, once released, is never edited: a change of shape is a new migration
appended to :data:`MIGRATIONS`.

Tables (version 1):

- galleries, gallery_faces: galleries and their enrolled faces (:mod:`core.gallery`);
- embedding_cache: embeddings by (image SHA-256, embedding key) (:mod:`core.cache`);
- calibrations: calibrated thresholds with provenance (:mod:`core.thresholds`);
- audit_log, audit_checkpoint_chain: the audit trail (:mod:`audit.trail.store`);
- users: accounts (:mod:`audit.accounts`);
- eval_runs and eval_rates, eval_disparity, eval_det, eval_histograms, eval_fta,
  eval_identification, eval_calibrations: stored evaluation runs
  (:mod:`audit.evaluation.store`).

Version 2: ``eval_runs`` names the evaluated system (``system``, ``system_version``: a
vendor's, for a run from its score files); ``eval_rates`` and ``eval_calibrations`` say how
far each threshold is from the nearest observed score (``threshold_margin``,
``reproducible``, ``nearest_match``, ``nearest_non_match``); ``eval_inequity`` holds the
inequity measures (max/min, max/geometric mean, GARBE, FDR) and ``eval_lfw_pairs`` the
LFW protocol's per-group rows (kept in ``eval_runs.run`` before); ``search_calibrations``
holds 1:N thresholds calibrated to a target FPIR for a gallery size (:mod:`core.thresholds`).

Version 3 (:mod:`audit.accounts`): ``users`` gains ``disabled_at`` and ``password_changed_at``;
auth_credentials holds sign-in sessions and API tokens (only a SHA-256 of each secret),
signin_failures the failed sign-ins in a row and lockouts, database_marks facts about the file
(``demo``).

Version 4 (:mod:`audit.trail.store`): every record is signed: ``audit_log`` gains ``note`` (the
signed checkpoint note of the tree ending at the record) and ``frontier`` (Merkle subtree roots,
stored every 1024 records); ``audit_log_meta`` holds the log's id (its origin), ``audit_log_keys``
every public key that signed the log and from which tree size, ``audit_cosignatures`` the
witnesses' cosignatures of checkpoints.

Version 5 (privacy, :mod:`core.gallery`, :mod:`core.cache`, :mod:`core.keystore`): ``gallery_faces``
rows are sealed (``sealed``: AES-GCM under the subject's key ``key_id``, found by ``subject_ref``, a
keyed HMAC of gallery and subject id); the clear ``subject_id``, ``image_name``, ``metadata`` and
``embedding`` columns stay only for files written before, and are emptied when the gallery store
seals their rows. ``embedding_cache`` keeps only failures (its cached embeddings are deleted);
evaluation embeddings go to ``evaluation_cache`` (sealed under the key of their day,
``evaluation_cache_keys``), kept for a retention period.

Version 6 (review with evidence, :mod:`core.gallery`): ``gallery_faces.photo`` holds the face's
reference photo sealed under the subject's key (``NULL`` when none was kept), shredded with the subject.

Version 7 (:mod:`audit.trail.store`): ``audit_log.subtrees`` holds, with each record, the RFC 6962 roots of the
perfect subtrees its leaf completes (``[seq - 2**h, seq)`` for ``h = 1 ..`` the trailing zero bits of ``seq``;
about 32 bytes a record), written in the same statement as the record, so inclusion and consistency proofs
read O(log n) stored hashes instead of rebuilding the tree. The migration only adds the column: every existing
row keeps its bytes, hashes and notes and gets ``NULL`` there, and proofs over those rows are computed from
their entry hashes as before; old files verify unchanged.

Version 8 (unlinkable gallery rows, :mod:`core.gallery`): ``gallery_faces.image_ref`` holds a keyed HMAC of the
image's SHA-256 (the clear ``image_sha256`` column stays only for files written before, and is emptied, with the
face id replaced by a keyed one, when the gallery store re-keys their rows); a file that held rows or cached
entries gets the ``database_marks`` entry ``rewrite_due``: the gallery store then rewrites the whole file (a fresh
copy, atomically renamed) so the clear values of before are not left in its free blocks.

Version 9 (keyed cache entries, :mod:`core.cache`): ``embedding_cache`` and ``evaluation_cache`` key their
entries by the image's keyed reference (the same keyed HMAC as ``gallery_faces.image_ref``, 32 hex digits,
in their ``image_sha256`` column) instead of its SHA-256 in clear, which let whoever holds the file confirm
that a given photo was submitted or evaluated. The caches are emptied (both are recomputable: failures are
found again, evaluated images embedded again) and a file that held entries gets ``rewrite_due``, so the clear
hashes are not left in its free blocks. The evaluation cache's day keys stay listed and are destroyed by its
purge as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.storage.errors import SchemaError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "current_version", "migrate", "table_columns"]


@dataclass(frozen=True)
class Migration:
    """One step of the schema: the statements that take a file from ``version - 1`` to ``version``."""

    version: int
    description: str
    statements: tuple[str, ...]


def _eval_table(name: str, columns: str) -> str:
    return f"CREATE TABLE IF NOT EXISTS {name} (run_id VARCHAR NOT NULL, row_no BIGINT NOT NULL, {columns})"


_V1 = (
    """CREATE TABLE IF NOT EXISTS galleries (
        name VARCHAR PRIMARY KEY,
        embedding_key VARCHAR NOT NULL,
        config JSON NOT NULL,
        face_count BIGINT NOT NULL DEFAULT 0,
        set_hash VARCHAR NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS gallery_faces (
        gallery VARCHAR NOT NULL,
        face_id VARCHAR NOT NULL,
        subject_id VARCHAR NOT NULL,
        image_sha256 VARCHAR NOT NULL,
        image_name VARCHAR,
        metadata JSON,
        embedding FLOAT[] NOT NULL,
        enrolled_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (gallery, face_id)
    )""",
    """CREATE TABLE IF NOT EXISTS embedding_cache (
        image_sha256 VARCHAR NOT NULL,
        embedding_key VARCHAR NOT NULL,
        embedding FLOAT[],
        face JSON,
        faces_detected INTEGER NOT NULL,
        error_code VARCHAR,
        error_message VARCHAR,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (image_sha256, embedding_key)
    )""",
    """CREATE TABLE IF NOT EXISTS calibrations (
        id BIGINT PRIMARY KEY,
        embedding_key VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        detector VARCHAR NOT NULL,
        alignment VARCHAR NOT NULL,
        threshold DOUBLE NOT NULL,
        source JSON NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq BIGINT PRIMARY KEY,
        prev_hash BLOB NOT NULL,
        entry_hash BLOB NOT NULL,
        record BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS audit_checkpoint_chain (
        seq BIGINT NOT NULL,
        head_hash BLOB NOT NULL,
        merkle_root BLOB NOT NULL,
        created_at VARCHAR NOT NULL,
        key_id VARCHAR NOT NULL,
        signature BLOB NOT NULL,
        frontier BLOB NOT NULL,
        prev BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS users (
        name VARCHAR PRIMARY KEY,
        role VARCHAR NOT NULL,
        password_hash VARCHAR NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS eval_runs (
        run_id VARCHAR PRIMARY KEY,
        created TIMESTAMPTZ NOT NULL,
        dataset_fingerprint VARCHAR,
        dataset_name VARCHAR,
        model_config JSON NOT NULL,
        embedding_key VARCHAR,
        code_version VARCHAR,
        config JSON NOT NULL,
        run JSON NOT NULL
    )""",
    _eval_table(
        "eval_rates",
        '"pairing" VARCHAR, "grouping" VARCHAR, "group" JSON, "group_name" VARCHAR, "other_group" JSON, '
        '"other_group_name" VARCHAR, "threshold_name" VARCHAR, "threshold_source" VARCHAR, "target_fmr" DOUBLE, '
        '"threshold" DOUBLE, "similarity_threshold" DOUBLE, "genuine_pairs" BIGINT, "false_non_matches" BIGINT, '
        '"fnmr" DOUBLE, "fnmr_lo" DOUBLE, "fnmr_hi" DOUBLE, "impostor_pairs" BIGINT, "false_matches" BIGINT, '
        '"fmr" DOUBLE, "fmr_lo" DOUBLE, "fmr_hi" DOUBLE, "subjects" BIGINT, "images" BIGINT, '
        '"low_count" BOOLEAN, "false_match_rate" DOUBLE, "false_non_match_rate" DOUBLE, "eer" DOUBLE, '
        '"interval_method" VARCHAR',
    ),
    _eval_table(
        "eval_disparity",
        '"grouping" VARCHAR, "group" JSON, "group_name" VARCHAR, "best_group_name" VARCHAR, '
        '"threshold_name" VARCHAR, "threshold" DOUBLE, "metric" VARCHAR, "rate" DOUBLE, '
        '"relative_to_best" DOUBLE, "relative_lo" DOUBLE, "relative_hi" DOUBLE, "max_min_ratio" DOUBLE, '
        '"max_min_ratio_lo" DOUBLE, "max_min_ratio_hi" DOUBLE, "flag" BOOLEAN, "max_min_flag" BOOLEAN, '
        '"low_count" BOOLEAN',
    ),
    _eval_table(
        "eval_det",
        '"grouping" VARCHAR, "group" JSON, "group_name" VARCHAR, "similarity" DOUBLE, "threshold" DOUBLE, '
        '"fmr" DOUBLE, "fnmr" DOUBLE',
    ),
    _eval_table(
        "eval_histograms",
        '"grouping" VARCHAR, "group" JSON, "group_name" VARCHAR, "bin_lo" DOUBLE, "bin_hi" DOUBLE, '
        '"genuine" BIGINT, "impostor" BIGINT',
    ),
    _eval_table(
        "eval_fta",
        '"group" JSON, "group_name" VARCHAR, "grouping" VARCHAR, "images" BIGINT, "failures" BIGINT, '
        '"fta_rate" DOUBLE',
    ),
    _eval_table(
        "eval_identification",
        '"grouping" VARCHAR, "group" JSON, "group_name" VARCHAR, "threshold_name" VARCHAR, "threshold" DOUBLE, '
        '"similarity_threshold" DOUBLE, "gallery_size" BIGINT, "gallery_subjects" BIGINT, '
        '"mated_searches" BIGINT, "rank1_hits" BIGINT, "rank1_rate" DOUBLE, "fnir" DOUBLE, "fnir_lo" DOUBLE, '
        '"fnir_hi" DOUBLE, "nonmated_searches" BIGINT, "false_positive_searches" BIGINT, "fpir" DOUBLE, '
        '"fpir_lo" DOUBLE, "fpir_hi" DOUBLE',
    ),
    _eval_table(
        "eval_calibrations",
        '"target_fmr" DOUBLE, "threshold" DOUBLE, "similarity_threshold" DOUBLE, "false_matches" BIGINT, '
        '"impostor_pairs" BIGINT, "achieved_fmr" DOUBLE, "false_non_matches" BIGINT, "genuine_pairs" BIGINT, '
        '"achieved_fnmr" DOUBLE',
    ),
)

_V2_EVALUATION = (
    'ALTER TABLE eval_runs ADD COLUMN IF NOT EXISTS "system" VARCHAR',
    'ALTER TABLE eval_runs ADD COLUMN IF NOT EXISTS "system_version" VARCHAR',
    'ALTER TABLE eval_rates ADD COLUMN IF NOT EXISTS "threshold_margin" DOUBLE',
    'ALTER TABLE eval_rates ADD COLUMN IF NOT EXISTS "reproducible" BOOLEAN',
    'ALTER TABLE eval_calibrations ADD COLUMN IF NOT EXISTS "nearest_match" DOUBLE',
    'ALTER TABLE eval_calibrations ADD COLUMN IF NOT EXISTS "nearest_non_match" DOUBLE',
    'ALTER TABLE eval_calibrations ADD COLUMN IF NOT EXISTS "threshold_margin" DOUBLE',
    _eval_table(
        "eval_inequity",
        '"grouping" VARCHAR, "threshold_name" VARCHAR, "threshold" DOUBLE, "measure" VARCHAR, "metric" VARCHAR, '
        '"value" DOUBLE, "lo" DOUBLE, "hi" DOUBLE, "groups" BIGINT, "zero_groups" BIGINT, '
        '"excluded_low_count" BIGINT, "alpha" DOUBLE',
    ),
    _eval_table(
        "eval_lfw_pairs",
        '"grouping" VARCHAR, "group" JSON, "group_name" VARCHAR, "threshold" DOUBLE, "similarity_threshold" DOUBLE, '
        '"genuine_pairs" BIGINT, "false_non_matches" BIGINT, "fnmr" DOUBLE, "fnmr_lo" DOUBLE, "fnmr_hi" DOUBLE, '
        '"impostor_pairs" BIGINT, "false_matches" BIGINT, "fmr" DOUBLE, "fmr_lo" DOUBLE, "fmr_hi" DOUBLE, '
        '"interval" VARCHAR',
    ),
    """CREATE TABLE IF NOT EXISTS search_calibrations (
        id BIGINT PRIMARY KEY,
        embedding_key VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        detector VARCHAR NOT NULL,
        alignment VARCHAR NOT NULL,
        gallery VARCHAR NOT NULL,
        gallery_fingerprint VARCHAR NOT NULL,
        gallery_size BIGINT NOT NULL,
        for_gallery_size BIGINT NOT NULL,
        method VARCHAR NOT NULL,
        target_fpir DOUBLE NOT NULL,
        threshold DOUBLE NOT NULL,
        searches BIGINT NOT NULL,
        nonmated_distances DOUBLE[] NOT NULL,
        source JSON NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
)

#: Version 3: authenticated accounts (:mod:`audit.accounts`). Account names are stored normalised
#: (NFKC, case-folded, single spaces), so the ``users`` primary key keeps them unique after normalisation.
_V3_ACCOUNTS = (
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled_at TIMESTAMPTZ",
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS password_changed_at TIMESTAMPTZ",
    # sign-in sessions (CLI, dashboard) and API tokens: only the SHA-256 of the secret is stored
    """CREATE TABLE IF NOT EXISTS auth_credentials (
        id VARCHAR PRIMARY KEY,
        secret_sha256 VARCHAR NOT NULL,
        user_name VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        label VARCHAR,
        created_by VARCHAR NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        idle_seconds DOUBLE,
        last_used_at TIMESTAMPTZ NOT NULL,
        revoked_at TIMESTAMPTZ,
        revoked_by VARCHAR,
        revoke_reason VARCHAR
    )""",
    # failed sign-ins in a row per (normalised) name, known account or not, and the lockout they caused
    """CREATE TABLE IF NOT EXISTS signin_failures (
        name VARCHAR PRIMARY KEY,
        failures INTEGER NOT NULL,
        last_failed_at TIMESTAMPTZ NOT NULL,
        locked_until TIMESTAMPTZ
    )""",
    # facts about the database itself (``demo``: built by ``facetrail demo``, so its sign-in page
    # may show the demo accounts' password scheme)
    """CREATE TABLE IF NOT EXISTS database_marks (
        name VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL,
        set_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
)

#: Version 5: privacy (see the module docstring). Cached embeddings are not kept (they are recomputable);
#: rows of galleries are sealed by :class:`core.gallery.GalleryStore` on first use (it needs the key store).
_V5_PRIVACY = (
    "ALTER TABLE gallery_faces ADD COLUMN IF NOT EXISTS subject_ref VARCHAR",
    "ALTER TABLE gallery_faces ADD COLUMN IF NOT EXISTS key_id VARCHAR",
    "ALTER TABLE gallery_faces ADD COLUMN IF NOT EXISTS sealed BLOB",
    "ALTER TABLE gallery_faces ALTER COLUMN subject_id DROP NOT NULL",
    "ALTER TABLE gallery_faces ALTER COLUMN embedding DROP NOT NULL",
    "DELETE FROM embedding_cache WHERE error_code IS NULL",
    """CREATE TABLE IF NOT EXISTS evaluation_cache (
        image_sha256 VARCHAR NOT NULL,
        embedding_key VARCHAR NOT NULL,
        key_id VARCHAR,
        sealed BLOB,
        faces_detected INTEGER NOT NULL,
        error_code VARCHAR,
        error_message VARCHAR,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (image_sha256, embedding_key)
    )""",
    """CREATE TABLE IF NOT EXISTS evaluation_cache_keys (
        day DATE PRIMARY KEY,
        key_id VARCHAR NOT NULL
    )""",
)

_V4_SIGNED_LOG = (
    "ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS note VARCHAR",
    "ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS frontier BLOB",
    """CREATE TABLE IF NOT EXISTS audit_log_meta (
        name VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS audit_log_keys (
        vkey VARCHAR PRIMARY KEY,
        from_size BIGINT NOT NULL,
        added_at VARCHAR NOT NULL,
        statement VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS audit_cosignatures (
        size BIGINT NOT NULL,
        witness VARCHAR NOT NULL,
        signature VARCHAR NOT NULL,
        received_at VARCHAR NOT NULL,
        PRIMARY KEY (size, witness, signature)
    )""",
)

#: Version 6: reference photos of gallery faces, sealed under the subject's key (:mod:`core.gallery`), so
#: erasing the subject shreds them with the embedding.
_V6_REFERENCE_PHOTOS = (
    "ALTER TABLE gallery_faces ADD COLUMN IF NOT EXISTS photo BLOB",
)

#: Version 7: the Merkle subtree roots each record completes, for O(log n) proofs (:mod:`audit.trail.store`).
_V7_SUBTREES = (
    "ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS subtrees BLOB",
)

#: Version 8: keyed face ids and image references (see the module docstring); rows are re-keyed by
#: :class:`core.gallery.GalleryStore` on first use (it needs the key store), then the file is rewritten.
_V8_UNLINKABLE_ROWS = (
    "ALTER TABLE gallery_faces ADD COLUMN IF NOT EXISTS image_ref VARCHAR",
    "ALTER TABLE gallery_faces ALTER COLUMN image_sha256 DROP NOT NULL",
    "INSERT INTO database_marks (name, value) SELECT 'rewrite_due', 'migration 8' "
    "WHERE (EXISTS (SELECT 1 FROM gallery_faces) OR EXISTS (SELECT 1 FROM embedding_cache) "
    "OR EXISTS (SELECT 1 FROM evaluation_cache)) ON CONFLICT DO NOTHING",
)

#: Version 9: keyed cache entries (see the module docstring).
_V9_KEYED_CACHES = (
    "INSERT INTO database_marks (name, value) SELECT 'rewrite_due', 'migration 9' "
    "WHERE (EXISTS (SELECT 1 FROM embedding_cache) OR EXISTS (SELECT 1 FROM evaluation_cache)) "
    "ON CONFLICT DO NOTHING",
    "DELETE FROM embedding_cache",
    "DELETE FROM evaluation_cache",
)

#: Every migration, oldest first; a released one is never edited.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "galleries, embedding cache, calibrations, audit log and checkpoints, users, evaluation runs", _V1),
    Migration(2, "evaluation: systems, reproducible thresholds, inequity measures, LFW pair rows; 1:N calibrations",
              _V2_EVALUATION),
    Migration(3, "accounts: disabled and password-change times, sessions and API tokens (hashed), "
                 "failed sign-ins and lockouts, database marks", _V3_ACCOUNTS),
    Migration(4, "audit: a signed checkpoint note with every record, the log's id, its keys, witness cosignatures",
              _V4_SIGNED_LOG),
    Migration(5, "privacy: sealed gallery rows (per-subject keys), no cached embeddings outside galleries, "
                 "evaluation cache with day keys", _V5_PRIVACY),
    Migration(6, "reference photos: gallery faces keep their photo sealed under the subject's key",
              _V6_REFERENCE_PHOTOS),
    Migration(7, "audit: the Merkle subtree roots each record completes, for proofs in O(log n) reads",
              _V7_SUBTREES),
    Migration(8, "unlinkable gallery rows: keyed face ids and image references, the file rewritten without "
                 "the clear values of before", _V8_UNLINKABLE_ROWS),
    Migration(9, "keyed cache entries: the caches keyed by the image's keyed reference, not its SHA-256 in clear "
                 "(emptied: they are recomputable)", _V9_KEYED_CACHES),
)

#: The shape this facetrail writes.
SCHEMA_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


def current_version(con: Any) -> int:
    """Return the file's schema version (0 for a new or pre-versioning file)."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()
    if not found or not found[0]:
        return 0
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(con: Any, path: str = "the database") -> int:
    """Bring the file to :data:`SCHEMA_VERSION` (inside the caller's transaction); return the version.

    Raises
    ------
    SchemaError
        The file was written by a newer facetrail (its version is above :data:`SCHEMA_VERSION`).
    """
    version = current_version(con)
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{path} has schema version {version}; this facetrail reads up to {SCHEMA_VERSION}: upgrade facetrail"
        )
    if version == SCHEMA_VERSION:
        return version
    con.execute(_VERSION_TABLE)
    for migration in MIGRATIONS:
        if migration.version > version:
            for statement in migration.statements:
                con.execute(statement)
            con.execute("INSERT INTO schema_version (version, description) VALUES (?, ?)",
                        [migration.version, migration.description])
    return SCHEMA_VERSION


def table_columns(con: Any, table: str) -> list[str]:
    """Column names of ``table`` in order (for checks that a store and the schema agree)."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [str(r[0]) for r in rows]
