-- Differential suite 2: aggregates, GROUP BY / HAVING, and joins of every kind.
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
