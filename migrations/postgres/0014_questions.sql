-- Office hours' humans in the loop. questions: every question answered
-- from the docs (or not known), with where it was asked, what Paver
-- answered (the message as posted, so a press can edit it in place from
-- storage) and the sections it cited; its buttons' nonce; the handoff to
-- the platform team (asked once: a conditional update from NULL; answered
-- once: from 'asked'), and its office-hours tag and the agenda period
-- that listed it. question_votes: one helpful/not-helpful vote per user
-- and question, changeable. office_hours_agendas: one row per agenda
-- period, recorded in the transaction that queues the agenda, so two
-- schedulers racing post one. Times are Unix ms.
CREATE TABLE questions (
    id               TEXT PRIMARY KEY,
    nonce            TEXT NOT NULL,
    platform         TEXT NOT NULL,
    channel          TEXT NOT NULL,
    thread           TEXT,
    asker_id         TEXT NOT NULL,
    asker_name       TEXT NOT NULL,
    question         TEXT NOT NULL,
    known            BIGINT NOT NULL,
    sources_json     TEXT NOT NULL,
    answer_json      TEXT NOT NULL,
    office_hours_at  BIGINT,
    agenda_period    BIGINT,
    handoff_state    TEXT,
    handoff_by       TEXT,
    handoff_at       BIGINT,
    handoff_platform TEXT,
    handoff_channel  TEXT,
    answered_by      TEXT,
    answer_text      TEXT,
    answered_at      BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX questions_created ON questions (created_at);
CREATE INDEX questions_office_hours ON questions (office_hours_at, agenda_period);

CREATE TABLE question_votes (
    question_id TEXT NOT NULL,
    voter       TEXT NOT NULL,
    helpful     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (question_id, voter)
);

CREATE TABLE office_hours_agendas (
    period    BIGINT PRIMARY KEY,
    platform  TEXT NOT NULL,
    channel   TEXT NOT NULL,
    questions BIGINT NOT NULL,
    at        BIGINT NOT NULL
);
