-- Staff page sessions (issue 25 item 8): a notice the session's own action left for its next page (shown once,
-- then cleared; pages never take a notice from the query string), and the index that ends sessions past their
-- absolute lifetime (HANDOVER_UI_MAX_SESSION_HOURS) whatever their activity.

ALTER TABLE ui_sessions ADD COLUMN notice_kind text, ADD COLUMN notice_text text,
    ADD CONSTRAINT ui_sessions_notice_chk CHECK ((notice_kind IS NULL) = (notice_text IS NULL)
        AND (notice_kind IS NULL OR notice_kind IN ('done', 'problem')) AND length(notice_text) <= 500);
CREATE INDEX ui_sessions_created_idx ON ui_sessions (created_at) WHERE ended_at IS NULL;
