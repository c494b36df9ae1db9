-- gearsched's sidecar state, shared by every sidecar of one scheduler.
-- Times are unix nanoseconds (bigint), as in the bbolt store.

-- Job ids, in blocks: block n holds ids (n-1)*65536+1 .. n*65536, so a
-- handle names one job whichever sidecar made it.
CREATE SEQUENCE id_blocks;

-- Pending one-shot jobs (plain, passthrough and trigger), due at due.
CREATE TABLE pending (
	id       bigint PRIMARY KEY,
	handle   text     NOT NULL,
	function text     NOT NULL,
	uniq     text     NOT NULL,
	reducer  text     NOT NULL,
	priority smallint NOT NULL,
	due      bigint   NOT NULL,
	data     bytea    NOT NULL,
	kind     smallint NOT NULL,
	when_s   bigint   NOT NULL,
	upstream text     NOT NULL,
	watch    text[]   NOT NULL
);
CREATE INDEX pending_due ON pending (due, id);

-- Recurring schedules: the definition and timing state as the bbolt store
-- encodes them (JSON), with the columns claims and keys need.
CREATE TABLE schedules (
	id      bigint PRIMARY KEY,
	name    text,
	source  text    NOT NULL,
	active  boolean NOT NULL,
	fire_at bigint  NOT NULL,
	def     jsonb   NOT NULL
);
CREATE INDEX schedules_due ON schedules (fire_at, id) WHERE active;
CREATE UNIQUE INDEX schedules_name ON schedules (name) WHERE source = 'file';

-- The (function, unique) keys held by pending jobs and schedules: creating
-- is create-if-absent on this primary key, across both tables. Clients'
-- keys have scope ''; a trigger job's has its upstream's address, since
-- each server holding epoch jobs for a second gets its own trigger.
CREATE TABLE keys (
	scope    text   NOT NULL,
	function text   NOT NULL,
	uniq     text   NOT NULL,
	id       bigint NOT NULL,
	PRIMARY KEY (scope, function, uniq)
);
CREATE INDEX keys_id ON keys (id);

-- Client requests' idempotency keys, while their record is known: bytes,
-- since a control request's key holds a NUL, which text cannot.
CREATE TABLE requests (
	request bytea PRIMARY KEY,
	id      bigint NOT NULL
);
CREATE INDEX requests_id ON requests (id);

-- The fire ledger: what went upstream, where, under which handle.
CREATE TABLE fired (
	id              bigint PRIMARY KEY,
	upstream        text   NOT NULL,
	upstream_handle text   NOT NULL,
	due             bigint NOT NULL,
	at              bigint NOT NULL
);
CREATE INDEX fired_at ON fired (at, id);

-- Runs of jobs and occurrences, for the API's history.
CREATE TABLE runs (
	id              bigint PRIMARY KEY,
	item            bigint NOT NULL,
	handle          text   NOT NULL,
	function        text   NOT NULL,
	due             bigint NOT NULL,
	released        bigint NOT NULL,
	upstream        text   NOT NULL,
	upstream_handle text   NOT NULL
);
CREATE INDEX runs_item ON runs (item, id);
CREATE INDEX runs_released ON runs (released, id);
