-- Differential suite 5: FOREIGN KEY constraints. Defining them (inline
-- REFERENCES, table constraints, ALTER TABLE ADD), the rows they refuse on
-- both sides, MATCH SIMPLE and FULL, NO ACTION and RESTRICT, and how they
-- meet DROP, TRUNCATE, DROP COLUMN and the catalogs.
-- Each statement ends with ';' at the end of a line. A '-- error: SQLSTATE'
-- comment marks a statement that is expected to fail.

-- ---------------------------------------------------------------- define
CREATE TABLE branches (bid int PRIMARY KEY, name text UNIQUE, region text);
CREATE TABLE tellers (tid int PRIMARY KEY, bid int REFERENCES branches, note text);
CREATE TABLE accounts (aid int PRIMARY KEY, bid int, owner text, CONSTRAINT accounts_branch FOREIGN KEY (bid) REFERENCES branches (bid) ON DELETE RESTRICT);
CREATE TABLE by_name (id int PRIMARY KEY, branch_name text REFERENCES branches (name));
CREATE TABLE pairs (a int, b int, label text, PRIMARY KEY (a, b));
CREATE TABLE pair_refs (id int PRIMARY KEY, x int, y int, FOREIGN KEY (y, x) REFERENCES pairs (b, a));
CREATE TABLE pair_full (id int PRIMARY KEY, a int, b int, FOREIGN KEY (a, b) REFERENCES pairs MATCH FULL);
CREATE TABLE tree (id int PRIMARY KEY, parent int REFERENCES tree (id), label text);
CREATE TABLE wide (id bigint PRIMARY KEY);
CREATE TABLE narrow (id int PRIMARY KEY, w smallint REFERENCES wide);
-- error: 42P01
CREATE TABLE bad1 (id int PRIMARY KEY, x int REFERENCES nowhere);
-- error: 42703
CREATE TABLE bad2 (id int PRIMARY KEY, x int REFERENCES branches (nope));
-- error: 42830
CREATE TABLE bad3 (id int PRIMARY KEY, x text REFERENCES branches (region));
-- error: 42830
CREATE TABLE bad4 (id int PRIMARY KEY, x int, y int, FOREIGN KEY (x, y) REFERENCES branches (bid));
-- error: 42804
CREATE TABLE bad5 (id int PRIMARY KEY, x text REFERENCES branches (bid));
-- error: 42703
CREATE TABLE bad6 (id int PRIMARY KEY, FOREIGN KEY (nope) REFERENCES branches);
-- error: 0A000
CREATE TABLE bad7 (id int PRIMARY KEY, x int, y int, FOREIGN KEY (x, y) REFERENCES pairs MATCH PARTIAL);
SELECT count(*) FROM pg_class WHERE relname LIKE 'bad%';

-- ---------------------------------------------------------------- the catalog
SELECT conname, contype, confupdtype, confdeltype, confmatchtype, conkey, confkey, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' ORDER BY conname;
SELECT c.conname, r.relname, f.relname FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_class f ON f.oid = c.confrelid WHERE c.contype = 'f' ORDER BY c.conname;

-- ---------------------------------------------------------------- children
INSERT INTO branches VALUES (1, 'north', 'n'), (2, 'south', 's'), (3, 'east', 'e');
INSERT INTO tellers VALUES (10, 1, 'a'), (11, 2, 'b'), (12, NULL, 'no branch');
-- error: 23503
INSERT INTO tellers VALUES (13, 9, 'c');
-- error: 23503
INSERT INTO tellers VALUES (14, 1, 'ok'), (15, 7, 'not ok');
SELECT tid, bid FROM tellers ORDER BY tid;
INSERT INTO accounts VALUES (100, 1, 'ann'), (101, 1, 'bob'), (102, 3, 'cy');
-- error: 23503
UPDATE accounts SET bid = 4 WHERE aid = 100;
UPDATE accounts SET bid = 2 WHERE aid = 100;
UPDATE accounts SET owner = 'bobby' WHERE aid = 101;
INSERT INTO by_name VALUES (1, 'north'), (2, NULL);
-- error: 23503
INSERT INTO by_name VALUES (3, 'west');
INSERT INTO pairs VALUES (1, 2, 'p'), (3, 4, 'q');
INSERT INTO pair_refs VALUES (1, 1, 2), (2, NULL, 99), (3, 3, 4);
-- error: 23503
INSERT INTO pair_refs VALUES (4, 2, 1);
INSERT INTO pair_full VALUES (1, 1, 2), (2, NULL, NULL);
-- error: 23503
INSERT INTO pair_full VALUES (3, 1, NULL);
-- error: 23503
INSERT INTO pair_full VALUES (4, 5, 6);
INSERT INTO tree VALUES (1, NULL, 'root'), (2, 1, 'child'), (3, 2, 'grandchild');
INSERT INTO tree VALUES (5, 4, 'forward'), (4, 1, 'named later in the same statement');
-- error: 23503
INSERT INTO tree VALUES (6, 60, 'dangling');
INSERT INTO wide VALUES (1), (40000);
INSERT INTO narrow VALUES (1, 1);
-- error: 23503
INSERT INTO narrow VALUES (2, 2);
INSERT INTO tellers (tid, bid) SELECT 20 + bid, bid FROM branches;
SELECT tid, bid FROM tellers ORDER BY tid;
INSERT INTO tellers VALUES (10, 3, 'moved') ON CONFLICT (tid) DO UPDATE SET bid = excluded.bid;
-- error: 23503
INSERT INTO tellers VALUES (10, 8, 'moved') ON CONFLICT (tid) DO UPDATE SET bid = excluded.bid;
SELECT tid, bid, note FROM tellers WHERE tid = 10;

-- ---------------------------------------------------------------- parents
-- error: 23503
DELETE FROM branches WHERE bid = 1;
-- error: 23503
UPDATE branches SET bid = 9 WHERE bid = 3;
UPDATE branches SET region = 'north' WHERE bid = 1;
-- error: 23503
UPDATE branches SET name = 'northern' WHERE bid = 1;
DELETE FROM tellers WHERE bid = 3;
DELETE FROM accounts WHERE bid = 3;
DELETE FROM branches WHERE bid = 3 RETURNING bid, name;
-- error: 23503
DELETE FROM tree WHERE id = 2;
DELETE FROM tree WHERE id IN (3, 2);
-- error: 23503
DELETE FROM pairs WHERE a = 1;
UPDATE pairs SET label = 'p2' WHERE a = 1;
DELETE FROM pair_refs WHERE id = 3;
DELETE FROM pairs WHERE a = 3;
SELECT bid, name, region FROM branches ORDER BY bid;
SELECT id, parent FROM tree ORDER BY id;

-- ---------------------------------------------------------------- transactions
BEGIN;
DELETE FROM tellers WHERE bid = 2;
DELETE FROM accounts WHERE bid = 2;
DELETE FROM branches WHERE bid = 2;
COMMIT;
SELECT count(*) FROM branches;
BEGIN;
INSERT INTO branches VALUES (5, 'west', 'w');
INSERT INTO tellers VALUES (50, 5, 'new branch, same transaction');
COMMIT;
SELECT tid, bid FROM tellers WHERE bid = 5;
BEGIN;
INSERT INTO tellers VALUES (51, 5, 'x');
-- error: 23503
DELETE FROM branches WHERE bid = 5;
ROLLBACK;
SELECT count(*) FROM tellers WHERE tid = 51;

-- ---------------------------------------------------------------- ALTER TABLE
CREATE TABLE loans (id int PRIMARY KEY, aid int, amount int);
INSERT INTO loans VALUES (1, 101, 5), (2, NULL, 7), (3, 101, 1);
ALTER TABLE loans ADD CONSTRAINT loans_account FOREIGN KEY (aid) REFERENCES accounts;
-- error: 23503
INSERT INTO loans VALUES (4, 999, 1);
ALTER TABLE loans DROP CONSTRAINT loans_account;
INSERT INTO loans VALUES (4, 999, 1);
-- error: 23503
ALTER TABLE loans ADD FOREIGN KEY (aid) REFERENCES accounts (aid);
SELECT count(*) FROM pg_constraint WHERE conrelid = 'loans'::regclass AND contype = 'f';
DELETE FROM loans WHERE id = 4;
ALTER TABLE loans ADD FOREIGN KEY (aid) REFERENCES accounts (aid);
SELECT conname FROM pg_constraint WHERE conrelid = 'loans'::regclass AND contype = 'f';
-- error: 42710
ALTER TABLE loans ADD CONSTRAINT loans_aid_fkey FOREIGN KEY (aid) REFERENCES accounts;
-- error: 42704
ALTER TABLE loans DROP CONSTRAINT nope;
ALTER TABLE loans DROP CONSTRAINT IF EXISTS nope;
-- error: 2BP01
ALTER TABLE branches DROP COLUMN name;
ALTER TABLE branches DROP COLUMN name CASCADE;
SELECT count(*) FROM pg_constraint WHERE conrelid = 'by_name'::regclass AND contype = 'f';
ALTER TABLE loans DROP COLUMN aid;
SELECT count(*) FROM pg_constraint WHERE conrelid = 'loans'::regclass AND contype = 'f';

-- ---------------------------------------------------------------- TRUNCATE, DROP
-- error: 0A000
TRUNCATE branches;
-- error: 0A000
TRUNCATE branches, tellers;
TRUNCATE branches, tellers, accounts;
SELECT (SELECT count(*) FROM branches), (SELECT count(*) FROM tellers), (SELECT count(*) FROM accounts);
-- error: 2BP01
DROP TABLE branches;
-- error: 2BP01
DROP TABLE branches, tellers;
DROP TABLE branches, tellers, accounts;
DROP TABLE wide CASCADE;
INSERT INTO narrow VALUES (3, 3);
SELECT conname FROM pg_constraint WHERE contype = 'f' ORDER BY conname;
