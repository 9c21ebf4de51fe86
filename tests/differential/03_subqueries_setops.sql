-- Differential suite 3: subqueries (scalar, IN, NOT IN with NULLs, EXISTS,
-- correlated), derived tables, non-recursive WITH, and set operations.
-- Each statement ends with ';' at the end of a line. A '-- error: SQLSTATE'
-- comment marks a statement that is expected to fail.
-- Text ordering assumes the C collation (byte order).

CREATE TABLE depts (id int PRIMARY KEY, name text NOT NULL, budget numeric(12,2), region text);
INSERT INTO depts VALUES
(1, 'Engineering', 500000, 'north'),
(2, 'Sales', 250000.5, 'south'),
(3, 'Marketing', 120000, 'south'),
(4, 'HR', 80000, 'north'),
(5, 'Research', NULL, 'east'),
(6, 'Support', 95000.25, NULL),
(7, 'Legal', 0, 'west'),
(8, 'Empty Dept', -1000, 'west');
CREATE TABLE people (id int PRIMARY KEY, first_name text NOT NULL, last_name text, dept_id int, age int, salary numeric(10,2), score int, city text, active boolean, joined date);
INSERT INTO people VALUES
(1, 'Grace', NULL, 2, 34, NULL, -13, 'Tokyo', true, '2015-05-13'),
(2, 'Ivan', 'O''Brien', 4, 65, 57910.99, 57, 'Zurich', true, '2015-12-21'),
(3, 'Rupert', 'smith', 1, 53, 148610.00, 76, 'OSLO', true, '2016-01-03'),
(4, 'Rupert', 'Lee', 7, 53, 77960.00, 29, 'OSLO', true, '2017-06-28'),
(5, 'Rupert', 'Nguyen', 1, 43, 62600.00, -40, 'Zurich', true, '2017-10-16'),
(6, 'sybil', NULL, NULL, 55, 57970.99, 15, 'oslo', true, '2020-07-14'),
(7, 'niaj', NULL, 3, 38, 25060.25, 48, 'Oslo', true, '2024-09-01'),
(8, 'Eve', 'Kim', 4, 34, 71570.25, 40, 'Lima', true, '2020-09-24'),
(9, 'dave', 'Dubois', 4, 27, 71630.50, 90, 'Zurich', true, '2022-10-01'),
(10, 'dave', 'Jones', 6, 60, 109180.99, 32, 'Tokyo', true, '2021-08-19'),
(11, 'frank', 'Rossi', 4, 57, 128490.25, NULL, 'Tokyo', true, '2012-01-15'),
(12, 'Walter', 'smith', NULL, 66, 138200.25, 8, 'Tokyo', true, '2013-07-24'),
(13, 'frank', 'MULLER', 2, 49, 96630.99, -33, 'New York', NULL, '2013-11-01'),
(14, 'Rupert', 'Rossi', 9, 58, 92900.00, 68, 'Rome', true, '2020-09-25'),
(15, 'dave', 'Garcia', 6, 64, 105170.00, 6, 'OSLO', true, '2021-07-22'),
(16, 'Mallory', 'Kim', 3, 26, 132950.00, 97, 'Rome', false, '2018-04-05'),
(17, 'sybil', 'smith', 2, 46, 66980.25, 70, 'New York', true, '2015-07-12'),
(18, 'Mallory', 'Rossi', 2, 62, 113450.00, 85, 'Rome', false, '2017-03-27'),
(19, 'heidi', 'Kim', 2, 60, 111680.99, 34, 'oslo', true, '2010-04-02'),
(20, 'niaj', 'Garcia', 9, 39, 89100.99, 47, 'Oslo', true, '2023-10-21'),
(21, 'heidi', 'smith', 2, 26, NULL, 49, NULL, true, '2018-06-27'),
(22, 'CAROL', 'Smith', 3, 51, NULL, -13, 'Oslo', true, '2012-11-06'),
(23, 'Trent', 'O''Brien', 2, 46, 127470.25, NULL, NULL, true, '2015-11-04'),
(24, 'Ivan', 'Lee', 2, 28, 85060.50, 84, 'New York', false, '2021-01-24'),
(25, 'sybil', 'Jones', 2, 25, 131850.00, 98, 'Rome', false, '2013-12-01'),
(26, 'Eve', 'Rossi', 1, 42, 98840.50, 43, NULL, NULL, NULL),
(27, 'sybil', 'MULLER', 2, 42, 114960.25, 43, 'New York', true, '2019-04-20'),
(28, 'dave', NULL, 5, 23, 55770.00, 47, 'Lima', true, NULL),
(29, 'alice', 'Jones', NULL, NULL, 72390.00, 68, NULL, true, '2016-03-26'),
(30, 'alice', 'Nguyen', 3, 48, 119970.99, -33, 'OSLO', true, '2017-11-14'),
(31, 'Ivan', 'Nguyen', 3, 42, 57590.25, 15, 'oslo', true, '2023-01-22'),
(32, 'judy', 'O''Brien', 3, NULL, 44170.00, NULL, 'Tokyo', true, '2014-10-21'),
(33, 'Eve', 'Smith', 2, 60, NULL, 15, 'Lima', true, '2012-09-08'),
(34, 'Eve', 'Smith', 9, 51, 28620.00, 87, 'Rome', true, '2015-09-19'),
(35, 'Eve', 'Garcia', 5, 23, NULL, 11, 'Rome', false, '2022-04-11'),
(36, 'frank', 'Smith', 1, 30, 115400.99, 98, 'Zurich', NULL, '2013-07-05'),
(37, 'judy', 'smith', 9, 34, 79310.25, 39, 'New York', true, '2017-11-15'),
(38, 'Grace', 'Lee', 6, 37, 32030.50, 67, 'Rome', false, '2019-08-17'),
(39, 'CAROL', 'garcia', 1, 47, 131460.50, 73, 'New York', true, '2013-02-25'),
(40, 'Eve', 'O''Brien', 9, 21, 99050.00, 97, 'Tokyo', false, '2010-11-28'),
(41, 'alice', 'Nguyen', 2, 29, 111470.50, 86, 'oslo', false, '2011-09-01'),
(42, 'Olivia', 'O''Brien', NULL, 51, 28770.00, 79, 'Zurich', true, '2022-05-26'),
(43, 'judy', 'Nguyen', NULL, NULL, 142650.00, NULL, 'Oslo', true, '2010-05-15'),
(44, 'frank', 'Kim', 3, 29, 35100.25, 9, 'Lima', true, '2014-10-23'),
(45, 'Trent', NULL, 7, 36, NULL, 61, 'New York', false, '2012-04-26'),
(46, 'Eve', 'Garcia', 3, 20, 85620.00, -46, 'Zurich', true, '2017-11-14'),
(47, 'CAROL', 'Smith', 2, 32, 39010.99, 43, 'Oslo', true, '2023-10-20'),
(48, 'Grace', NULL, 5, 22, 89490.00, 5, 'New York', false, '2021-04-20'),
(49, 'Rupert', 'smith', NULL, 21, 68290.99, -26, 'oslo', false, '2018-09-12'),
(50, 'Trent', 'smith', 5, 30, 102490.99, 8, 'OSLO', false, '2023-06-05'),
(51, 'Trent', 'MULLER', 1, 50, 148230.99, 8, 'New York', true, '2017-05-01'),
(52, 'Walter', 'garcia', 4, 44, 133230.00, -36, 'Oslo', true, '2014-11-25'),
(53, 'Trent', 'Jones', 3, 21, 97980.50, -28, 'Zurich', true, '2021-12-22'),
(54, 'heidi', 'Garcia', 1, 32, 140890.00, 63, 'Rome', true, '2013-02-21'),
(55, 'Ivan', 'smith', 1, 38, 93900.00, 7, 'Tokyo', true, '2020-04-17'),
(56, 'Mallory', 'garcia', 1, 21, 61830.00, -49, NULL, false, '2021-03-05'),
(57, 'alice', 'Rossi', NULL, 26, 44940.99, 24, 'oslo', true, '2018-09-02'),
(58, 'Bob', 'Jones', 2, 54, 123810.25, 76, 'Tokyo', true, '2016-02-07'),
(59, 'sybil', 'O''Brien', 7, 63, 89590.00, 7, 'Rome', true, '2022-11-07'),
(60, 'judy', 'O''Brien', 2, NULL, 143370.25, -40, 'Tokyo', true, '2014-05-08');
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, category text, price numeric(8,2) NOT NULL, stock int);
INSERT INTO products VALUES
(1, 'hammer', NULL, 53.03, NULL),
(2, 'Wrench', 'garden', 76.67, 91),
(3, 'drill', 'garden', 96.77, 62),
(4, 'Ball', 'tools', 55.55, NULL),
(5, 'kite', 'Toys', 95.25, -5),
(6, 'Puzzle', 'books', 64.43, 21),
(7, 'rake', 'books', 16.01, NULL),
(8, 'Shovel', 'tools', 53.87, 21),
(9, 'hose', 'garden', 19.64, 138),
(10, 'novel', 'tools', 72.15, 129),
(11, 'Atlas', 'books', 90.52, 36),
(12, 'poems', 'garden', 8.30, 185),
(13, 'saw', 'books', 30.91, 85),
(14, 'Doll', 'books', 45.78, 167),
(15, 'seeds', 'books', 97.36, 182),
(16, 'lamp', 'books', 16.75, 124),
(17, 'Chair', 'Toys', 85.24, -2),
(18, 'glue', 'Toys', 78.04, 136),
(19, 'tape', 'tools', 44.90, 183),
(20, 'Map', NULL, 96.54, 116);
CREATE TABLE orders (id int PRIMARY KEY, person_id int, product_id int, qty int NOT NULL, discount numeric(4,2), status text, ordered_on date);
INSERT INTO orders VALUES
(1, 35, 20, 1, 0.15, 'pending', '2022-10-27'),
(2, 27, 15, 2, NULL, NULL, '2022-05-07'),
(3, 20, 10, -1, 0.50, 'pending', '2024-05-10'),
(4, 33, 17, 1, 0.50, 'shipped', '2024-03-19'),
(5, 47, 7, 2, 0.50, 'Shipped', '2024-10-06'),
(6, 39, 1, 5, 0.10, 'pending', '2023-04-12'),
(7, 35, 5, 8, NULL, 'shipped', '2022-11-20'),
(8, 48, 7, 4, 0.10, 'pending', '2023-06-22'),
(9, 5, 4, 5, NULL, 'returned', '2022-12-09'),
(10, 21, 10, 11, 0.00, 'Shipped', '2023-07-07'),
(11, 9, 2, 0, NULL, 'shipped', '2022-07-23'),
(12, 57, 12, -2, 0.10, 'Shipped', '2022-07-04'),
(13, 33, 17, 2, 0.05, 'returned', '2023-09-11'),
(14, 9, 6, 2, 0.10, 'returned', '2022-05-13'),
(15, 33, 8, 8, NULL, 'shipped', '2024-11-11'),
(16, NULL, 14, 12, NULL, 'cancelled', '2023-01-07'),
(17, 45, 9, 6, NULL, 'cancelled', '2022-08-23'),
(18, 52, 19, 5, 0.10, 'Shipped', '2022-07-25'),
(19, 35, 4, 5, NULL, 'pending', '2022-07-06'),
(20, 58, 4, 1, 0.15, 'shipped', '2022-03-18'),
(21, 40, 2, 12, 0.00, 'pending', '2023-09-14'),
(22, 45, 11, -1, 0.00, 'Shipped', '2022-03-14'),
(23, 45, 20, 5, 0.15, 'cancelled', '2022-11-12'),
(24, NULL, 19, 8, 0.00, 'Shipped', '2023-06-03'),
(25, 16, 4, 10, 0.05, 'returned', '2023-01-01'),
(26, 28, 6, 10, 0.00, 'Shipped', '2022-02-06'),
(27, 34, 8, 7, NULL, 'Shipped', '2024-06-10'),
(28, 3, 22, 6, NULL, 'Shipped', '2024-06-15'),
(29, 26, 10, 4, 0.00, 'shipped', '2024-09-24'),
(30, 23, 4, 1, NULL, 'Shipped', '2022-06-02'),
(31, 20, 13, 8, 0.15, 'Shipped', '2022-11-28'),
(32, 18, 16, 6, NULL, 'shipped', '2023-07-16'),
(33, 22, 8, 2, NULL, 'Shipped', '2024-07-03'),
(34, 12, 20, 1, 0.50, 'Shipped', '2023-12-01'),
(35, 42, 16, 7, 0.15, 'returned', '2022-10-06'),
(36, 49, 17, 8, NULL, 'cancelled', '2022-03-20'),
(37, 19, 19, 12, NULL, 'pending', '2023-02-20'),
(38, 19, 14, 12, 0.50, 'shipped', '2023-09-09'),
(39, 23, 14, 6, NULL, 'pending', '2023-04-12'),
(40, 64, 18, 0, 0.10, 'Shipped', '2024-11-26'),
(41, 24, 21, 1, NULL, 'pending', '2022-12-10'),
(42, 13, 17, 1, 0.10, 'pending', '2022-07-17'),
(43, 56, 8, 10, 0.00, 'cancelled', '2022-12-19'),
(44, 31, 16, -1, NULL, 'pending', '2022-02-23'),
(45, 35, 6, 0, 0.50, 'Shipped', '2022-11-17'),
(46, 63, 13, 11, NULL, 'Shipped', '2022-02-27'),
(47, 19, 12, 6, 0.05, NULL, '2022-08-26'),
(48, 54, 2, 7, 0.15, NULL, '2024-11-08'),
(49, 23, 17, 5, 0.50, 'Shipped', '2023-04-02'),
(50, 43, 13, 4, 0.50, 'Shipped', '2024-04-10'),
(51, 26, 20, -2, 0.50, 'cancelled', '2024-10-14'),
(52, 57, 22, 12, 0.10, 'returned', '2024-10-11'),
(53, 3, 9, 5, 0.15, 'shipped', '2023-10-07'),
(54, 1, 1, 5, 0.15, 'cancelled', '2023-06-16'),
(55, 61, 14, 8, NULL, 'shipped', '2022-09-20'),
(56, 43, 11, 1, 0.50, 'returned', '2022-08-09'),
(57, 39, 22, 11, NULL, NULL, '2023-06-05'),
(58, 42, 11, 6, 0.00, 'shipped', '2023-04-21'),
(59, 57, 17, 10, 0.50, 'Shipped', '2022-05-08'),
(60, 55, 11, 1, 0.50, 'cancelled', '2022-12-28'),
(61, 15, 15, 5, NULL, 'shipped', '2022-12-21'),
(62, 19, 6, -2, NULL, 'returned', '2023-08-22'),
(63, 55, 19, 7, NULL, 'shipped', '2023-09-09'),
(64, 24, 16, 0, NULL, 'shipped', '2024-03-14'),
(65, 14, 17, 6, 0.15, 'Shipped', '2023-04-06'),
(66, 42, 5, 6, 0.05, 'pending', '2022-04-21'),
(67, 46, 2, 6, 0.50, 'returned', '2024-06-18'),
(68, 45, 4, -2, NULL, 'shipped', '2022-11-25'),
(69, 21, 14, 6, NULL, 'cancelled', '2023-08-15'),
(70, 37, 14, 3, NULL, 'returned', '2024-01-23'),
(71, 64, 22, 8, NULL, 'pending', '2022-07-13'),
(72, 51, 6, 6, NULL, 'returned', '2022-10-07'),
(73, 14, 6, 10, NULL, 'pending', '2024-04-27'),
(74, 32, 2, 7, 0.05, 'pending', '2024-05-13'),
(75, 43, 10, 0, 0.10, 'shipped', '2023-11-19'),
(76, 59, 19, 6, 0.50, 'cancelled', '2024-10-21'),
(77, 49, 11, 1, NULL, 'returned', '2024-01-06'),
(78, 48, 7, 1, NULL, 'Shipped', '2024-06-16'),
(79, 19, 9, 5, NULL, 'shipped', '2023-05-15'),
(80, 33, 13, 11, 0.15, 'cancelled', '2022-01-04'),
(81, NULL, 1, 3, 0.10, 'returned', '2024-02-11'),
(82, 58, 2, 5, 0.10, 'returned', '2024-07-20'),
(83, 58, 13, -1, NULL, 'pending', '2022-11-19'),
(84, 16, 6, 6, 0.05, NULL, '2022-05-19'),
(85, 63, 14, 12, 0.15, 'returned', '2023-03-02'),
(86, 26, 7, 0, 0.10, 'cancelled', '2024-04-05'),
(87, 57, 15, 1, NULL, 'cancelled', '2022-09-23'),
(88, 43, 9, 12, NULL, 'pending', '2022-12-26'),
(89, 58, 17, 10, 0.15, 'pending', '2024-03-23'),
(90, 17, 22, 4, NULL, 'Shipped', '2022-08-28'),
(91, 8, 7, 10, NULL, NULL, '2024-12-03'),
(92, 51, 5, 4, NULL, 'pending', '2023-09-10'),
(93, 60, 1, 1, NULL, 'pending', '2023-09-26'),
(94, 32, 13, 12, 0.00, 'shipped', '2022-06-11'),
(95, 10, 2, 3, 0.05, 'Shipped', '2023-08-20'),
(96, NULL, 11, 7, 0.50, NULL, '2023-03-27'),
(97, 50, 2, -2, 0.15, 'Shipped', '2024-04-07'),
(98, 5, 19, 1, 0.05, 'Shipped', '2022-05-28'),
(99, 31, 17, 2, 0.10, 'returned', '2023-05-07'),
(100, 18, 14, 2, 0.10, 'returned', '2023-03-01');

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
