-- Differential suite 4: DDL, DML (INSERT / UPDATE / DELETE, ON CONFLICT,
-- RETURNING), sequences, data types, casts and constraint errors.
-- Each statement ends with ';' at the end of a line. A '-- error: SQLSTATE'
-- comment marks a statement that is expected to fail.

SET TimeZone = 'UTC';

-- ---------------------------------------------------------------- DDL
CREATE TABLE inventory (sku text PRIMARY KEY, title varchar(40) NOT NULL, qty int NOT NULL DEFAULT 0 CHECK (qty >= 0), price numeric(9,2) CHECK (price > 0), tags text, updated date DEFAULT '2024-01-01');
CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL, payload text, happened timestamptz);
CREATE TABLE pairs (a int, b int, note text, PRIMARY KEY (a, b));
CREATE TABLE loose (x int, y text);
CREATE TABLE typed (id int PRIMARY KEY, b boolean, s smallint, i integer, g bigint, r real, d double precision, n numeric(12,4), t text, v varchar(8), c char(4), by bytea, dt date, ts timestamp, tz timestamptz, u uuid);
CREATE TABLE IF NOT EXISTS loose (x int);
CREATE TABLE ff (id int PRIMARY KEY) WITH (fillfactor=70);
CREATE INDEX inventory_title_idx ON inventory (title);
CREATE UNIQUE INDEX loose_x_uq ON loose (x);
CREATE SEQUENCE counter START WITH 10 INCREMENT BY 5;
-- error: 42P07
CREATE TABLE loose (x int);
-- error: 42P07
CREATE INDEX inventory_title_idx ON inventory (qty);

-- ---------------------------------------------------------------- INSERT
INSERT INTO inventory (sku, title, qty, price, tags) VALUES
('A-100', 'Hammer', 10, 12.50, 'tools'),
('A-101', 'Screwdriver', 25, 4.99, 'tools'),
('B-200', 'Garden Hose', 3, 29.00, 'garden'),
('B-201', 'rake', 0, 15.75, NULL),
('C-300', 'Novel', 40, 9.99, 'books'),
('C-301', 'atlas', 2, 45.00, 'books');
INSERT INTO inventory (sku, title) VALUES ('D-400', 'Mystery Box');
INSERT INTO inventory VALUES ('D-401', 'Gift Card', DEFAULT, 25, DEFAULT, DEFAULT);
SELECT * FROM inventory ORDER BY sku;
INSERT INTO events (kind, payload, happened) VALUES ('start', 'boot', '2024-03-01 08:00:00+00'), ('login', 'alice', '2024-03-01 09:15:30+00'), ('login', NULL, '2024-03-01 10:00:00+02'), ('stop', '', NULL);
SELECT id, kind, payload, happened FROM events ORDER BY id;
INSERT INTO pairs VALUES (1, 1, 'one-one'), (1, 2, 'one-two'), (2, 1, 'two-one'), (3, 3, NULL);
INSERT INTO loose VALUES (1, 'a'), (2, 'b'), (NULL, 'n1'), (NULL, 'n2');
INSERT INTO loose (y) VALUES ('only y');
SELECT x, y FROM loose;
INSERT INTO typed VALUES
(1, true, 1, 100, 10000000000, 1.5, 2.25, 3.14159, 'text one', 'var', 'ch', '\x0102ff', '2024-02-29', '2024-02-29 23:59:59', '2024-02-29 23:59:59+00', '11111111-2222-3333-4444-555555555555'),
(2, false, -32768, -2147483648, -9223372036854775808, -0.5, 1e-10, -0.0001, '', '', '', '', '1970-01-01', '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', 'ABCDEFAB-CDEF-ABCD-EFAB-CDEFABCDEFAB'),
(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(4, 'yes', 32767, 2147483647, 9223372036854775807, 100, 12345.678, 99999999.9999, 'Tab	and ''quote''', 'abcdefgh', 'abcd', 'hello', '2000-12-31', '2000-12-31 12:30:45.123456', '2000-12-31 12:30:45.5-05', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}');
SELECT * FROM typed ORDER BY id;
SELECT id, b, s + 1, i::bigint + 1, g / 2, n * 2, length(t), length(v), octet_length(c), length(by), dt + 1, tz FROM typed ORDER BY id;
SELECT id, CASE WHEN b THEN 'yes' WHEN NOT b THEN 'no' ELSE 'unknown' END FROM typed;
SELECT id, r::numeric, d::numeric(20,10), n::int, n::text FROM typed WHERE id IN (1, 2, 4);
SELECT id, ts::date, tz::date, dt::timestamp, ts < '2000-01-01' FROM typed WHERE id <> 3;
SELECT id, u, u::text = lower(u::text) FROM typed WHERE u IS NOT NULL;
SELECT count(*) FROM typed WHERE u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
SELECT id FROM typed WHERE by = '\x68656c6c6f';
INSERT INTO loose SELECT x + 10, upper(y) FROM loose WHERE x IS NOT NULL;
INSERT INTO pairs (a, b) SELECT g, g * 10 FROM generate_series(1, 3) AS g;
SELECT a, b, note FROM pairs ORDER BY a, b;
-- error: 23505
INSERT INTO inventory (sku, title) VALUES ('A-100', 'Duplicate');
-- error: 23505
INSERT INTO pairs VALUES (1, 1, 'dup');
-- error: 23505
INSERT INTO loose VALUES (1, 'dup');
-- error: 23502
INSERT INTO inventory (sku, title) VALUES ('E-500', NULL);
-- error: 23502
INSERT INTO inventory (title) VALUES ('no key');
-- error: 23502
INSERT INTO pairs (a, note) VALUES (5, 'no b');
-- error: 23514
INSERT INTO inventory (sku, title, qty) VALUES ('E-501', 'Negative', -1);
-- error: 23514
INSERT INTO inventory (sku, title, price) VALUES ('E-502', 'Free', 0);
-- error: 22001
INSERT INTO inventory (sku, title) VALUES ('E-503', 'This title is definitely longer than forty characters');
-- error: 22001
INSERT INTO typed (id, c) VALUES (10, 'toolong');
-- error: 22003
INSERT INTO typed (id, s) VALUES (11, 40000);
-- error: 22003
INSERT INTO typed (id, n) VALUES (12, 123456789);
-- error: 22P02
INSERT INTO typed (id, i) VALUES (13, 'twelve');
-- error: 22P02
INSERT INTO typed (id, u) VALUES (14, 'not-a-uuid');
-- error: 22P02
INSERT INTO typed (id, b) VALUES (15, 'perhaps');
-- error: 22008
INSERT INTO typed (id, dt) VALUES (16, '2023-02-29');
-- error: 42601
INSERT INTO loose (x, y) VALUES (1);
-- error: 42703
INSERT INTO loose (x, z) VALUES (1, 2);
-- error: 42P01
INSERT INTO missing VALUES (1);
SELECT count(*) FROM inventory;
SELECT count(*) FROM typed;

-- ---------------------------------------------------------------- RETURNING
INSERT INTO inventory (sku, title, qty, price) VALUES ('E-600', 'Lamp', 7, 19.90) RETURNING sku, title, qty, price, updated;
INSERT INTO inventory (sku, title, price) VALUES ('E-601', 'Chair', 49), ('E-602', 'Desk', 150) RETURNING sku, qty * 2, upper(title);
INSERT INTO events (kind) VALUES ('ping') RETURNING id, kind, payload;
INSERT INTO loose VALUES (100, 'hundred') RETURNING *;

-- ---------------------------------------------------------------- ON CONFLICT
INSERT INTO inventory (sku, title) VALUES ('A-100', 'Ignored') ON CONFLICT DO NOTHING;
INSERT INTO inventory (sku, title) VALUES ('A-100', 'Ignored'), ('F-700', 'Kept') ON CONFLICT (sku) DO NOTHING RETURNING sku, title;
INSERT INTO inventory (sku, title, qty) VALUES ('A-101', 'Screwdriver', 5) ON CONFLICT (sku) DO UPDATE SET qty = inventory.qty + EXCLUDED.qty RETURNING sku, qty;
INSERT INTO inventory (sku, title, qty, price) VALUES ('B-200', 'Garden Hose XL', 1, 35.00), ('F-701', 'Bucket', 4, 6.00) ON CONFLICT (sku) DO UPDATE SET title = EXCLUDED.title, price = EXCLUDED.price, qty = inventory.qty + EXCLUDED.qty RETURNING sku, title, qty, price;
INSERT INTO inventory (sku, title) VALUES ('C-300', 'Not updated') ON CONFLICT (sku) DO UPDATE SET title = EXCLUDED.title WHERE inventory.qty < 10 RETURNING sku, title;
INSERT INTO inventory (sku, title) VALUES ('C-301', 'Atlas (2nd ed.)') ON CONFLICT (sku) DO UPDATE SET title = EXCLUDED.title WHERE inventory.qty < 10 RETURNING sku, title;
INSERT INTO pairs VALUES (1, 2, 'updated') ON CONFLICT (a, b) DO UPDATE SET note = EXCLUDED.note || '!';
INSERT INTO loose VALUES (2, 'conflict on x') ON CONFLICT (x) DO UPDATE SET y = EXCLUDED.y;
SELECT sku, title, qty, price FROM inventory ORDER BY sku;
SELECT a, b, note FROM pairs WHERE a = 1 ORDER BY b;
SELECT x, y FROM loose WHERE x = 2;
-- error: 21000
INSERT INTO pairs VALUES (1, 1, 'x'), (1, 1, 'y') ON CONFLICT (a, b) DO UPDATE SET note = EXCLUDED.note;
-- error: 42P10
INSERT INTO inventory (sku, title) VALUES ('A-100', 'x') ON CONFLICT (title) DO NOTHING;
-- error: 23514
INSERT INTO inventory (sku, title, qty) VALUES ('A-100', 'x', 1) ON CONFLICT (sku) DO UPDATE SET qty = -5;

-- ---------------------------------------------------------------- UPDATE
UPDATE inventory SET qty = qty + 1 WHERE tags = 'tools';
UPDATE inventory SET price = round(price * 1.10, 2) WHERE price < 10 RETURNING sku, price;
UPDATE inventory SET tags = COALESCE(tags, 'misc'), updated = '2024-06-30' WHERE tags IS NULL RETURNING sku, tags, updated;
UPDATE inventory SET title = upper(title) WHERE sku LIKE 'C%' RETURNING sku, title;
UPDATE inventory SET qty = 0 WHERE sku = 'nope' RETURNING sku;
UPDATE pairs SET note = 'n:' || a || '/' || b WHERE note IS NULL;
UPDATE loose SET x = x * 100 WHERE x BETWEEN 10 AND 20 RETURNING x, y;
UPDATE inventory SET qty = (SELECT max(qty) FROM inventory) WHERE sku = 'D-400' RETURNING qty;
UPDATE inventory SET price = price - 1 WHERE sku IN (SELECT sku FROM inventory WHERE qty > 20);
SELECT sku, title, qty, price, tags, updated FROM inventory ORDER BY sku;
SELECT a, b, note FROM pairs ORDER BY a, b;
SELECT x, y FROM loose;
-- error: 23505
UPDATE inventory SET sku = 'A-100' WHERE sku = 'A-101';
-- error: 23505
UPDATE loose SET x = 1 WHERE x = 2;
-- error: 23502
UPDATE inventory SET title = NULL WHERE sku = 'A-100';
-- error: 23514
UPDATE inventory SET qty = qty - 1000 WHERE sku = 'A-100';
-- error: 22003
UPDATE typed SET s = s + 1 WHERE id = 4;
-- error: 22012
UPDATE inventory SET qty = qty / 0;
-- error: 42703
UPDATE inventory SET nope = 1;
SELECT sku, qty FROM inventory WHERE sku IN ('A-100', 'A-101');

-- ---------------------------------------------------------------- DELETE
DELETE FROM loose WHERE x IS NULL RETURNING y;
DELETE FROM pairs WHERE a = 3 RETURNING a, b, note;
DELETE FROM inventory WHERE qty = 0 AND tags = 'misc' RETURNING sku;
DELETE FROM events WHERE kind = 'login';
DELETE FROM inventory WHERE sku NOT IN (SELECT sku FROM inventory WHERE price IS NOT NULL) RETURNING sku;
DELETE FROM pairs WHERE false RETURNING a;
SELECT id, kind FROM events ORDER BY id;
SELECT sku FROM inventory ORDER BY sku;
SELECT count(*), sum(qty), sum(price) FROM inventory;

-- ---------------------------------------------------------------- ALTER TABLE, TRUNCATE, DROP
ALTER TABLE inventory ADD COLUMN discontinued boolean DEFAULT false;
ALTER TABLE inventory ADD COLUMN rating int;
SELECT sku, discontinued, rating FROM inventory ORDER BY sku;
UPDATE inventory SET rating = length(title) % 5 + 1;
SELECT rating, count(*) FROM inventory GROUP BY rating;
ALTER TABLE inventory DROP COLUMN tags;
-- error: 42703
SELECT tags FROM inventory;
-- error: 42701
ALTER TABLE inventory ADD COLUMN rating int;
SELECT * FROM inventory ORDER BY sku;
TRUNCATE loose;
SELECT count(*) FROM loose;
INSERT INTO loose VALUES (1, 'again');
SELECT x, y FROM loose;
DROP INDEX inventory_title_idx;
DROP TABLE ff;
-- error: 42P01
DROP TABLE ff;
DROP TABLE IF EXISTS ff;
-- error: 42P01
SELECT * FROM ff;

-- ---------------------------------------------------------------- sequences and serials
-- error: 55000
SELECT currval('counter');
SELECT nextval('counter');
SELECT nextval('counter'), nextval('counter');
SELECT currval('counter');
INSERT INTO events (kind) VALUES ('a'), ('b') RETURNING id;
SELECT max(id) FROM events;
-- error: 42P01
SELECT nextval('no_such_seq');

-- ---------------------------------------------------------------- casts and expressions on types
SELECT 1::boolean, 0::boolean, 'on'::boolean, 'off'::boolean, true::int;
SELECT 3.7::int, (-3.7)::int, 2.5::int, 3.5::int, '  7 '::int;
SELECT 32767::smallint, (-32768)::smallint, 9223372036854775807::bigint;
SELECT 10 / 4, 10 % 4, 10.0 / 4, 10 / 4.0, 10::numeric / 4, -10 / 4;
SELECT 1.1 + 2.2, 0.1 * 3, 1.10 * 1.10, 100::numeric(5,2), 1.005::numeric(4,2);
SELECT 1.5::real, 0.1::double precision, 1e10::float8, 1.5e-7::float8, 3::real / 2;
SELECT '2024-01-31'::date + 1, '2024-03-01'::date - 1, '2024-12-31'::date - '2024-01-01'::date;
SELECT '2024-05-06 07:08:09'::timestamp, '2024-05-06 07:08:09+03'::timestamptz, '2024-05-06'::timestamp;
SELECT '2024-05-06 07:08:09+00'::timestamptz::date, '2024-05-06 07:08:09'::timestamp::date;
SELECT 'abc'::varchar(2), 'abc'::char(5) = 'abc', length('abc'::char(5)), 'x'::char(3) || 'y';
SELECT '\x41'::bytea, 'A'::bytea, length('\x0001'::bytea);
SELECT 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid;
SELECT NULL::int IS NULL, NULL = NULL, NULL <> 1, NULL AND false, NULL OR true, NOT (NULL::boolean);
SELECT 1 < 2 AND 'a' < 'b', 'B' < 'a', 2.0 = 2, '2024-01-01'::date < '2024-01-02'::date;
SELECT CAST(CAST(42 AS text) AS int) + 1, CAST('12.30' AS numeric), CAST(12.30 AS text);
-- error: 22003
SELECT 32768::smallint;
-- error: 22003
SELECT 9223372036854775807::bigint + 1;
-- error: 22003
SELECT 123.456::numeric(4,2);
-- error: 22003
SELECT 1e309::float8;
-- error: 22012
SELECT 5 % 0;
-- error: 22012
SELECT 5.0 / 0.0;
-- error: 22P02
SELECT '1e5'::int;
-- error: 22P02
SELECT ''::int;
-- error: 22008
SELECT '2024-13-01'::date;
-- error: 22007
SELECT '2024-xx-01'::date;
-- error: 22008
SELECT '2024-01-01 25:00:00'::timestamp;
-- error: 42804
SELECT CASE WHEN true THEN 1 ELSE 'x'::text END;
-- error: 42846
SELECT true::date;
-- error: 42883
SELECT 'a'::text + 1;
