-- Differential suite 2: aggregates, GROUP BY / HAVING, and joins of every kind.
-- Each statement ends with ';' at the end of a line. A '-- error: SQLSTATE'
-- comment marks a statement that is expected to fail.
-- Text ordering assumes the C collation (byte order).

\ir setup/shop.sql

-- ---------------------------------------------------------------- plain aggregates
SELECT count(*), count(age), count(salary), count(last_name), count(DISTINCT first_name) FROM people;
SELECT sum(age), min(age), max(age), avg(age) FROM people;
SELECT sum(salary), min(salary), max(salary), avg(salary) FROM people;
SELECT sum(score), avg(score), min(score), max(score) FROM people WHERE score < 0;
SELECT min(first_name), max(first_name), min(last_name), max(last_name) FROM people;
SELECT min(joined), max(joined) FROM people;
SELECT count(*), sum(qty), avg(qty), count(discount), sum(discount), max(discount) FROM orders;
SELECT count(DISTINCT status), count(DISTINCT lower(status)), count(DISTINCT person_id) FROM orders;
SELECT sum(price), avg(price), min(price), max(price), count(stock), sum(stock) FROM products;
SELECT count(*), sum(age), avg(salary), max(city) FROM people WHERE id > 1000;
SELECT sum(CASE WHEN active THEN 1 ELSE 0 END), sum(CASE WHEN NOT active THEN 1 ELSE 0 END), count(*) - count(active) FROM people;
SELECT sum(CASE WHEN qty > 0 THEN qty ELSE 0 END), sum(CASE WHEN qty < 0 THEN -qty ELSE 0 END) FROM orders;
SELECT min(age) > 18, max(age) > 65, count(*) = count(age) FROM people;
SELECT count(*) FROM people WHERE salary > (SELECT avg(salary) FROM people);

-- ---------------------------------------------------------------- GROUP BY
SELECT dept_id, count(*) FROM people GROUP BY dept_id;
SELECT dept_id, count(*), sum(salary), min(age), max(age) FROM people GROUP BY dept_id ORDER BY dept_id NULLS FIRST;
SELECT dept_id, avg(salary), avg(age) FROM people GROUP BY dept_id;
SELECT city, count(*) FROM people GROUP BY city ORDER BY count(*) DESC, city NULLS LAST;
SELECT lower(city) AS c, count(*) FROM people GROUP BY lower(city) ORDER BY c;
SELECT first_name, count(*) FROM people GROUP BY first_name HAVING count(*) > 2 ORDER BY first_name;
SELECT active, count(*), avg(score) FROM people GROUP BY active;
SELECT age / 10 * 10 AS decade, count(*), min(salary), max(salary) FROM people GROUP BY age / 10 * 10 ORDER BY decade NULLS LAST;
SELECT substring(joined::text, 1, 4) AS y, count(*) FROM people GROUP BY substring(joined::text, 1, 4) ORDER BY y;
SELECT dept_id, city, count(*) FROM people GROUP BY dept_id, city;
SELECT dept_id, count(DISTINCT city), count(DISTINCT first_name) FROM people GROUP BY dept_id;
SELECT status, count(*), sum(qty), min(ordered_on), max(ordered_on) FROM orders GROUP BY status ORDER BY status;
SELECT product_id, sum(qty) AS total FROM orders GROUP BY product_id HAVING sum(qty) > 20 ORDER BY total DESC, product_id;
SELECT person_id, count(*) FROM orders GROUP BY person_id HAVING count(*) >= 3;
SELECT category, count(*), sum(stock), avg(price) FROM products GROUP BY category;
SELECT category, max(price) - min(price) FROM products GROUP BY category HAVING count(*) > 1;
SELECT 1 AS one, count(*) FROM people GROUP BY 1;
SELECT dept_id FROM people GROUP BY dept_id HAVING avg(age) > 45;
SELECT dept_id, sum(score) FROM people WHERE score IS NOT NULL GROUP BY dept_id HAVING sum(score) < 200;
SELECT count(*) FROM people GROUP BY active HAVING false;
SELECT CASE WHEN score >= 50 THEN 'high' WHEN score >= 0 THEN 'low' ELSE 'negative' END AS band, count(*) FROM people GROUP BY 1;
SELECT COALESCE(status, 'unknown'), count(*) FROM orders GROUP BY COALESCE(status, 'unknown');
SELECT upper(status), sum(qty) FROM orders GROUP BY upper(status);
SELECT sum(CASE WHEN discount IS NULL THEN qty END), sum(CASE WHEN discount IS NOT NULL THEN qty END), status FROM orders GROUP BY status;
SELECT count(*) FROM (SELECT DISTINCT dept_id, active FROM people) t;

-- ---------------------------------------------------------------- inner joins
SELECT p.id, p.first_name, d.name FROM people p JOIN depts d ON p.dept_id = d.id;
SELECT p.id, d.name, d.region FROM people p INNER JOIN depts d ON d.id = p.dept_id WHERE d.region = 'south';
SELECT p.id, d.name FROM people p, depts d WHERE p.dept_id = d.id AND p.age > 55;
SELECT o.id, p.first_name, pr.name, o.qty FROM orders o JOIN people p ON p.id = o.person_id JOIN products pr ON pr.id = o.product_id;
SELECT o.id, pr.name, o.qty * pr.price AS amount FROM orders o JOIN products pr ON pr.id = o.product_id WHERE o.qty > 8 ORDER BY amount DESC, o.id;
SELECT a.id, b.id FROM people a JOIN people b ON a.first_name = b.first_name AND a.id < b.id;
SELECT a.id, b.id, a.city FROM people a JOIN people b ON a.city = b.city AND a.dept_id = b.dept_id AND a.id < b.id;
SELECT a.id, b.id FROM people a JOIN people b ON lower(a.last_name) = lower(b.last_name) AND a.last_name <> b.last_name AND a.id < b.id;
SELECT p.id, d.name FROM people p JOIN depts d ON p.salary > d.budget / 4 WHERE d.id IN (2, 3);
SELECT d.name, pr.name FROM depts d JOIN products pr ON d.id = pr.id % 8 + 1 WHERE pr.price > 50;

-- ---------------------------------------------------------------- outer joins
SELECT p.id, d.name FROM people p LEFT JOIN depts d ON p.dept_id = d.id;
SELECT p.id FROM people p LEFT JOIN depts d ON p.dept_id = d.id WHERE d.id IS NULL;
SELECT d.id, d.name, p.id FROM depts d LEFT JOIN people p ON p.dept_id = d.id AND p.age > 60;
SELECT d.id, d.name, p.id FROM depts d LEFT JOIN people p ON p.dept_id = d.id WHERE p.age > 60;
SELECT p.id, d.name FROM people p RIGHT JOIN depts d ON p.dept_id = d.id;
SELECT d.name FROM people p RIGHT JOIN depts d ON p.dept_id = d.id WHERE p.id IS NULL;
SELECT p.id, d.id FROM people p FULL JOIN depts d ON p.dept_id = d.id;
SELECT p.id, d.id FROM people p FULL OUTER JOIN depts d ON p.dept_id = d.id WHERE p.id IS NULL OR d.id IS NULL;
SELECT count(*), count(p.id), count(d.id) FROM people p FULL JOIN depts d ON p.dept_id = d.id;
SELECT o.id, p.first_name FROM orders o LEFT JOIN people p ON p.id = o.person_id WHERE p.id IS NULL;
SELECT pr.id, pr.name, count(o.id) FROM products pr LEFT JOIN orders o ON o.product_id = pr.id GROUP BY pr.id, pr.name ORDER BY pr.id;
SELECT o.product_id FROM orders o LEFT JOIN products pr ON pr.id = o.product_id WHERE pr.id IS NULL;
SELECT o.id, pr.name, p.first_name FROM orders o LEFT JOIN products pr ON pr.id = o.product_id LEFT JOIN people p ON p.id = o.person_id WHERE o.id <= 30;
SELECT p.id, d.name FROM people p LEFT JOIN depts d ON p.dept_id = d.id AND d.budget > 100000;
SELECT d.id, o.id FROM depts d LEFT JOIN people p ON p.dept_id = d.id LEFT JOIN orders o ON o.person_id = p.id WHERE d.id >= 5;

-- ---------------------------------------------------------------- cross joins, USING, NATURAL
SELECT count(*) FROM people CROSS JOIN depts;
SELECT d.name, pr.category FROM depts d CROSS JOIN products pr WHERE d.id = 1 AND pr.price < 20;
SELECT count(*) FROM depts a, depts b WHERE a.id < b.id;
SELECT a.id, b.id FROM depts a CROSS JOIN depts b WHERE a.region = b.region AND a.id < b.id;
SELECT id, name, first_name FROM people JOIN (SELECT id AS dept_id, name FROM depts) d USING (dept_id);
SELECT dept_id, count(*) FROM people JOIN (SELECT id AS dept_id FROM depts WHERE region = 'north') d USING (dept_id) GROUP BY dept_id;
SELECT dept_id, p.id FROM people p FULL JOIN (SELECT id AS dept_id FROM depts) d USING (dept_id) WHERE p.id IS NULL OR dept_id IS NULL;
SELECT * FROM (SELECT id, first_name FROM people WHERE id < 10) a NATURAL JOIN (SELECT id, age FROM people WHERE id > 5) b;

-- ---------------------------------------------------------------- joins with aggregates
SELECT d.name, count(p.id), sum(p.salary), avg(p.age) FROM depts d LEFT JOIN people p ON p.dept_id = d.id GROUP BY d.name;
SELECT d.region, count(*), max(p.salary) FROM depts d JOIN people p ON p.dept_id = d.id GROUP BY d.region ORDER BY d.region NULLS FIRST;
SELECT p.id, p.first_name, count(o.id) AS n, COALESCE(sum(o.qty), 0) AS q FROM people p LEFT JOIN orders o ON o.person_id = p.id GROUP BY p.id, p.first_name ORDER BY n DESC, p.id LIMIT 10;
SELECT pr.category, sum(o.qty * pr.price) FROM orders o JOIN products pr ON pr.id = o.product_id WHERE o.qty > 0 GROUP BY pr.category;
SELECT d.name, count(DISTINCT o.product_id) FROM depts d JOIN people p ON p.dept_id = d.id JOIN orders o ON o.person_id = p.id GROUP BY d.name HAVING count(DISTINCT o.product_id) > 3;
SELECT p.city, count(o.id) FROM people p JOIN orders o ON o.person_id = p.id WHERE o.status = 'shipped' GROUP BY p.city;
SELECT pr.name, sum(CASE WHEN o.status ILIKE 'shipped' THEN o.qty ELSE 0 END) AS shipped, sum(o.qty) AS total FROM products pr JOIN orders o ON o.product_id = pr.id GROUP BY pr.name;
SELECT m.dept_id, m.top, p.id FROM (SELECT dept_id, max(salary) AS top FROM people GROUP BY dept_id) m JOIN people p ON p.dept_id = m.dept_id AND p.salary = m.top;
SELECT d.name, sum(p.salary) * 100 / d.budget FROM depts d JOIN people p ON p.dept_id = d.id WHERE d.budget > 0 GROUP BY d.name, d.budget;
SELECT a.dept_id, count(*) FROM people a JOIN people b ON a.dept_id = b.dept_id AND a.id <> b.id GROUP BY a.dept_id;
SELECT substring(o.ordered_on::text, 1, 4) AS y, d.region, sum(o.qty) FROM orders o JOIN people p ON p.id = o.person_id JOIN depts d ON d.id = p.dept_id GROUP BY 1, 2 ORDER BY 1, 2 NULLS LAST;

-- ---------------------------------------------------------------- errors
-- error: 42803
SELECT dept_id, first_name FROM people GROUP BY dept_id;
-- error: 42803
SELECT id FROM people WHERE sum(age) > 10;
-- error: 42803
SELECT count(*) FROM people HAVING age > 10;
-- error: 42702
SELECT id FROM people p JOIN depts d ON p.dept_id = d.id;
-- error: 42P01
SELECT p.id FROM people JOIN depts ON dept_id = depts.id;
-- error: 42703
SELECT * FROM people JOIN depts USING (nope);
-- error: 42883
SELECT sum(first_name) FROM people;
-- error: 42883
SELECT avg(active) FROM people;
-- error: 42804
SELECT p.id FROM people p JOIN depts d ON p.dept_id;
-- error: 22003
SELECT sum(salary)::smallint FROM people;
-- error: 22012
SELECT dept_id, sum(age) / (count(*) - count(*)) FROM people GROUP BY dept_id;
