-- Differential suite 3: subqueries (scalar, IN, NOT IN with NULLs, EXISTS,
-- correlated), derived tables, non-recursive WITH, and set operations.
-- Each statement ends with ';' at the end of a line. A '-- error: SQLSTATE'
-- comment marks a statement that is expected to fail.
-- Text ordering assumes the C collation (byte order).

\ir setup/shop.sql

-- ---------------------------------------------------------------- scalar subqueries
SELECT (SELECT count(*) FROM people), (SELECT max(price) FROM products), (SELECT min(ordered_on) FROM orders);
SELECT id, salary - (SELECT avg(salary) FROM people) FROM people WHERE salary IS NOT NULL;
SELECT id, first_name FROM people WHERE age = (SELECT max(age) FROM people);
SELECT id, first_name FROM people WHERE salary > (SELECT avg(salary) FROM people);
SELECT id FROM people WHERE age < (SELECT min(age) FROM people WHERE dept_id = 1);
SELECT d.id, d.name, (SELECT count(*) FROM people p WHERE p.dept_id = d.id) FROM depts d;
SELECT d.id, (SELECT max(p.salary) FROM people p WHERE p.dept_id = d.id), (SELECT min(p.age) FROM people p WHERE p.dept_id = d.id) FROM depts d;
SELECT pr.id, pr.name, (SELECT sum(o.qty) FROM orders o WHERE o.product_id = pr.id) AS sold FROM products pr;
SELECT o.id, (SELECT pr.name FROM products pr WHERE pr.id = o.product_id) FROM orders o WHERE o.id % 10 = 0;
SELECT p.id, (SELECT o.id FROM orders o WHERE o.person_id = p.id ORDER BY o.ordered_on DESC, o.id DESC LIMIT 1) AS latest FROM people p ORDER BY p.id;
SELECT (SELECT first_name FROM people WHERE id = -1);
SELECT id FROM people WHERE dept_id = (SELECT id FROM depts WHERE name = 'Sales');
SELECT COALESCE((SELECT sum(qty) FROM orders WHERE person_id = 9999), 0);

-- ---------------------------------------------------------------- IN / NOT IN
SELECT id, first_name FROM people WHERE dept_id IN (SELECT id FROM depts WHERE region = 'north');
SELECT id FROM people WHERE dept_id NOT IN (SELECT id FROM depts WHERE region = 'north');
SELECT id FROM people WHERE id IN (SELECT person_id FROM orders WHERE qty > 10);
SELECT id FROM people WHERE id NOT IN (SELECT person_id FROM orders);
SELECT id FROM people WHERE id NOT IN (SELECT person_id FROM orders WHERE person_id IS NOT NULL);
SELECT count(*) FROM people WHERE id NOT IN (SELECT person_id FROM orders WHERE person_id IS NOT NULL);
SELECT id FROM products WHERE id NOT IN (SELECT product_id FROM orders);
SELECT id FROM depts WHERE id IN (SELECT dept_id FROM people);
SELECT id FROM depts WHERE id NOT IN (SELECT dept_id FROM people);
SELECT id FROM depts WHERE id NOT IN (SELECT dept_id FROM people WHERE dept_id IS NOT NULL);
SELECT id, 5 IN (SELECT dept_id FROM people), 8 IN (SELECT dept_id FROM people), 8 NOT IN (SELECT dept_id FROM people) FROM depts WHERE id = 1;
-- Not yet on Tessera (0A000, row values): (person_id, product_id) IN (SELECT person_id, product_id ...).
SELECT id FROM products WHERE category IN (SELECT category FROM products WHERE price > 90);
SELECT id, name FROM products WHERE price > ALL (SELECT price FROM products WHERE category = 'Toys');
SELECT id, name FROM products WHERE price < ANY (SELECT price FROM products WHERE category = 'garden');
SELECT id FROM people WHERE age > ALL (SELECT age FROM people WHERE dept_id = 3 AND age IS NOT NULL);
SELECT id FROM people WHERE age = ANY (SELECT age FROM people WHERE dept_id = 6);

-- ---------------------------------------------------------------- EXISTS
SELECT d.id, d.name FROM depts d WHERE EXISTS (SELECT 1 FROM people p WHERE p.dept_id = d.id);
SELECT d.id, d.name FROM depts d WHERE NOT EXISTS (SELECT 1 FROM people p WHERE p.dept_id = d.id);
SELECT p.id FROM people p WHERE EXISTS (SELECT 1 FROM orders o WHERE o.person_id = p.id AND o.status = 'cancelled');
SELECT p.id FROM people p WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.person_id = p.id);
SELECT pr.id FROM products pr WHERE EXISTS (SELECT 1 FROM orders o WHERE o.product_id = pr.id AND o.qty < 0) AND pr.stock > 0;
SELECT p.id FROM people p WHERE EXISTS (SELECT 1 FROM people q WHERE q.first_name = p.first_name AND q.id <> p.id);
SELECT EXISTS (SELECT 1 FROM people WHERE age > 100), EXISTS (SELECT 1 FROM people WHERE age > 60);
SELECT o.id FROM orders o WHERE EXISTS (SELECT 1 FROM products pr WHERE pr.id = o.product_id AND pr.price * o.qty > 500);

-- ---------------------------------------------------------------- correlated subqueries
SELECT p.id, p.salary FROM people p WHERE p.salary > (SELECT avg(q.salary) FROM people q WHERE q.dept_id = p.dept_id);
SELECT p.id, p.age FROM people p WHERE p.age = (SELECT min(q.age) FROM people q WHERE q.city = p.city);
SELECT o.id FROM orders o WHERE o.qty = (SELECT max(o2.qty) FROM orders o2 WHERE o2.product_id = o.product_id);
SELECT p.id, (SELECT count(*) FROM orders o WHERE o.person_id = p.id AND o.qty > 0) FROM people p WHERE p.dept_id = 2;
SELECT d.name FROM depts d WHERE (SELECT count(*) FROM people p WHERE p.dept_id = d.id) >= 5;
SELECT p.id FROM people p WHERE 2 < (SELECT count(*) FROM orders o WHERE o.person_id = p.id);
SELECT pr.id, pr.price FROM products pr WHERE pr.price >= (SELECT max(pr2.price) FROM products pr2 WHERE pr2.category = pr.category);
SELECT p.id, p.first_name FROM people p WHERE p.dept_id IN (SELECT d.id FROM depts d WHERE d.budget < p.salary * 2);

-- ---------------------------------------------------------------- derived tables
SELECT t.dept_id, t.n FROM (SELECT dept_id, count(*) AS n FROM people GROUP BY dept_id) t WHERE t.n > 4;
SELECT avg(n) FROM (SELECT person_id, count(*) AS n FROM orders GROUP BY person_id) t;
SELECT max(total), min(total) FROM (SELECT product_id, sum(qty) AS total FROM orders GROUP BY product_id) t;
SELECT t.city, t.c FROM (SELECT lower(city) AS city, count(*) AS c FROM people WHERE city IS NOT NULL GROUP BY lower(city)) AS t ORDER BY t.c DESC, t.city;
SELECT x.id, x.amount FROM (SELECT o.id, o.qty * pr.price AS amount FROM orders o JOIN products pr ON pr.id = o.product_id) x WHERE x.amount BETWEEN 100 AND 300;
SELECT d.name, s.total FROM depts d JOIN (SELECT dept_id, sum(salary) AS total FROM people GROUP BY dept_id) s ON s.dept_id = d.id;
SELECT count(*) FROM (SELECT DISTINCT first_name FROM people) t;
SELECT * FROM (SELECT id, age FROM people WHERE age IS NOT NULL ORDER BY age DESC, id LIMIT 5) t ORDER BY id;
SELECT a.n + b.n FROM (SELECT count(*) AS n FROM people) a, (SELECT count(*) AS n FROM orders) b;
SELECT status, n FROM (SELECT status, count(*) AS n FROM orders GROUP BY status) s WHERE n = (SELECT max(n) FROM (SELECT count(*) AS n FROM orders GROUP BY status) s2);

-- ---------------------------------------------------------------- WITH (non-recursive)
WITH big AS (SELECT * FROM people WHERE salary > 100000) SELECT id, first_name FROM big;
WITH big AS (SELECT * FROM people WHERE salary > 100000) SELECT dept_id, count(*) FROM big GROUP BY dept_id;
WITH totals AS (SELECT person_id, sum(qty) AS q FROM orders GROUP BY person_id) SELECT p.id, p.first_name, t.q FROM people p JOIN totals t ON t.person_id = p.id WHERE t.q > 15;
WITH a AS (SELECT id, dept_id FROM people WHERE age > 40), b AS (SELECT id FROM depts WHERE region IN ('north', 'south')) SELECT a.id FROM a JOIN b ON a.dept_id = b.id;
WITH a AS (SELECT 1 AS x UNION ALL SELECT 2), b AS (SELECT x * 10 AS y FROM a) SELECT x, y FROM a, b;
WITH d AS (SELECT id, name FROM depts) SELECT d.name, (SELECT count(*) FROM people p WHERE p.dept_id = d.id) FROM d;
WITH s AS (SELECT status, count(*) AS n FROM orders GROUP BY status) SELECT COALESCE(status, '?'), n FROM s ORDER BY n DESC, status NULLS LAST;
WITH x(a, b) AS (VALUES (1, 'one'), (2, 'two')) SELECT b FROM x WHERE a = 2;
WITH p AS (SELECT id FROM people WHERE active) SELECT count(*) FROM orders WHERE person_id IN (SELECT id FROM p);

-- ---------------------------------------------------------------- set operations
SELECT city FROM people UNION SELECT region FROM depts;
SELECT city FROM people UNION ALL SELECT region FROM depts;
SELECT upper(left(city, 1)) FROM people INTERSECT SELECT upper(left(name, 1)) FROM depts;
SELECT dept_id FROM people INTERSECT SELECT id FROM depts;
SELECT dept_id FROM people INTERSECT ALL SELECT id FROM depts;
SELECT id FROM depts EXCEPT SELECT dept_id FROM people;
SELECT dept_id FROM people EXCEPT SELECT id FROM depts;
SELECT dept_id FROM people EXCEPT ALL SELECT id FROM depts;
SELECT first_name FROM people WHERE dept_id = 1 INTERSECT SELECT first_name FROM people WHERE dept_id = 2;
SELECT first_name FROM people WHERE dept_id = 1 EXCEPT SELECT first_name FROM people WHERE dept_id = 2;
SELECT first_name FROM people WHERE dept_id = 1 UNION SELECT first_name FROM people WHERE dept_id = 2 ORDER BY first_name;
SELECT person_id FROM orders WHERE status = 'shipped' INTERSECT SELECT person_id FROM orders WHERE status = 'pending' ORDER BY person_id NULLS FIRST;
SELECT product_id FROM orders UNION SELECT id FROM products ORDER BY 1 DESC LIMIT 5;
SELECT id, 'person' AS kind FROM people WHERE id <= 3 UNION ALL SELECT id, 'dept' FROM depts WHERE id <= 3 ORDER BY kind, id;
SELECT age FROM people UNION SELECT score FROM people ORDER BY 1 NULLS FIRST LIMIT 10;
SELECT age FROM people EXCEPT SELECT score FROM people;
SELECT age FROM people INTERSECT SELECT score FROM people;
SELECT status FROM orders EXCEPT ALL SELECT status FROM orders WHERE qty > 5;
SELECT status FROM orders INTERSECT ALL SELECT status FROM orders WHERE qty > 5;
SELECT 1 UNION SELECT 2 EXCEPT SELECT 1;
SELECT 1 UNION (SELECT 2 EXCEPT SELECT 1);
SELECT 1 UNION ALL SELECT 1 INTERSECT SELECT 1;
SELECT count(*) FROM (SELECT first_name FROM people UNION SELECT last_name FROM people) t;
SELECT count(*) FROM (SELECT first_name FROM people UNION ALL SELECT last_name FROM people) t;
SELECT x FROM (SELECT age AS x FROM people UNION SELECT score FROM people) u WHERE x BETWEEN 40 AND 50 ORDER BY x;
SELECT id FROM people WHERE id IN (SELECT person_id FROM orders WHERE qty > 10 UNION SELECT id FROM people WHERE age > 64);
SELECT 1.5 UNION SELECT 2 UNION SELECT 2.50;
SELECT name FROM depts UNION SELECT name FROM products INTERSECT SELECT name FROM products WHERE price > 50;

-- ---------------------------------------------------------------- errors
-- error: 21000
SELECT (SELECT id FROM people WHERE dept_id = 1);
-- error: 21000
SELECT id FROM depts WHERE id = (SELECT dept_id FROM people);
-- error: 42601
SELECT (SELECT id, age FROM people WHERE id = 1);
-- error: 42601
SELECT * FROM (SELECT 1);
-- error: 42601
SELECT id FROM people UNION SELECT id, age FROM people;
-- error: 42804
SELECT age FROM people UNION SELECT first_name FROM people;
-- error: 42P01
WITH a AS (SELECT 1) SELECT * FROM b;
-- error: 42703
SELECT id FROM people UNION SELECT id FROM depts ORDER BY first_name;
-- error: 42601
SELECT id FROM people WHERE id IN (SELECT id, age FROM people);
