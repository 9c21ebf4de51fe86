-- Differential suite 1: filtering, ordering, LIMIT/OFFSET, DISTINCT, CASE,
-- COALESCE/NULLIF, LIKE/ILIKE, BETWEEN, IN, casts, string and math functions.
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

-- ---------------------------------------------------------------- sanity
SELECT count(*) FROM depts;
SELECT count(*) FROM people;
SELECT count(*) FROM products;
SELECT count(*) FROM orders;
SELECT * FROM depts ORDER BY id;
SELECT * FROM people ORDER BY id;
SELECT * FROM products ORDER BY id;
SELECT * FROM orders ORDER BY id;

-- ---------------------------------------------------------------- WHERE
SELECT id, first_name, age FROM people WHERE age > 50;
SELECT id, first_name, age FROM people WHERE age <= 30 ORDER BY age, id;
SELECT id FROM people WHERE age IS NULL;
SELECT id FROM people WHERE age IS NOT NULL AND salary IS NULL;
SELECT id, score FROM people WHERE score < 0 ORDER BY score, id;
SELECT id, score FROM people WHERE NOT (score >= 0);
SELECT id FROM people WHERE dept_id = 1 OR dept_id = 4;
SELECT id FROM people WHERE dept_id <> 1;
SELECT id FROM people WHERE active;
SELECT id FROM people WHERE NOT active;
SELECT id FROM people WHERE active IS NULL;
SELECT id FROM people WHERE active IS NOT TRUE;
SELECT id FROM people WHERE active IS DISTINCT FROM true;
SELECT id FROM people WHERE joined >= '2020-01-01' AND joined < '2022-01-01';
SELECT id, salary FROM people WHERE salary > 100000.00 AND (city = 'Tokyo' OR city = 'Rome');
SELECT id FROM people WHERE salary BETWEEN 50000 AND 80000;
SELECT id FROM people WHERE age NOT BETWEEN 25 AND 60;
SELECT id FROM people WHERE id BETWEEN 55 AND 100;
SELECT id FROM people WHERE dept_id IN (2, 3, 9);
SELECT id FROM people WHERE dept_id NOT IN (1, 2, 3, 4);
SELECT id FROM people WHERE dept_id NOT IN (1, NULL);
SELECT id FROM people WHERE city IN ('Oslo', 'oslo');
SELECT id, qty FROM orders WHERE qty <= 0;
SELECT id FROM orders WHERE status IS NULL;
SELECT id FROM orders WHERE discount = 0;
SELECT id, name FROM products WHERE stock < 0 OR stock IS NULL;
SELECT id FROM people WHERE 1 = 0;
SELECT id FROM people WHERE NULL;

-- ---------------------------------------------------------------- LIKE / ILIKE
SELECT id, first_name FROM people WHERE first_name LIKE 'R%';
SELECT id, first_name FROM people WHERE first_name LIKE '%e';
SELECT id, first_name FROM people WHERE first_name ILIKE '%A%';
SELECT id, last_name FROM people WHERE last_name LIKE '_m%';
SELECT id, last_name FROM people WHERE last_name ILIKE 'smith';
SELECT id, last_name FROM people WHERE last_name NOT LIKE '%i%';
SELECT id, last_name FROM people WHERE last_name LIKE '%''%';
SELECT id, city FROM people WHERE city ILIKE 'oslo';
SELECT id, city FROM people WHERE city LIKE '% %';
SELECT name FROM products WHERE name NOT ILIKE '%a%' ORDER BY name;
SELECT 'abc' LIKE 'a%', 'abc' LIKE 'A%', 'abc' ILIKE 'A%', 'a%c' LIKE 'a\%c', 'abc' LIKE 'a\%c';

-- ---------------------------------------------------------------- ORDER BY / LIMIT / OFFSET
SELECT id, first_name FROM people ORDER BY first_name, id;
SELECT id, first_name FROM people ORDER BY first_name DESC, id DESC;
SELECT id, age FROM people ORDER BY age NULLS FIRST, id;
SELECT id, age FROM people ORDER BY age DESC NULLS LAST, id;
SELECT id, age FROM people ORDER BY age DESC, id;
SELECT id, salary FROM people ORDER BY salary, id LIMIT 10;
SELECT id, salary FROM people ORDER BY salary DESC NULLS LAST, id LIMIT 5 OFFSET 5;
SELECT id, score FROM people ORDER BY abs(score), id;
SELECT id, city FROM people ORDER BY lower(city), id;
SELECT id, city, first_name FROM people ORDER BY 2, 3, 1;
SELECT id, first_name || ' ' || last_name AS full_name FROM people WHERE last_name IS NOT NULL ORDER BY full_name, id;
SELECT id, qty, discount FROM orders ORDER BY qty DESC, discount NULLS FIRST, id LIMIT 15;
SELECT id FROM orders ORDER BY id LIMIT 5 OFFSET 95;
SELECT id FROM orders ORDER BY id OFFSET 98;
SELECT id FROM orders ORDER BY id LIMIT 0;
SELECT id, ordered_on FROM orders ORDER BY ordered_on DESC, id LIMIT 10;
SELECT id, name, price FROM products ORDER BY price DESC, id FETCH FIRST 3 ROWS ONLY;
SELECT id, status FROM orders ORDER BY status NULLS FIRST, id;
SELECT id, joined FROM people ORDER BY joined NULLS LAST, id;
SELECT id, active FROM people ORDER BY active, id;

-- ---------------------------------------------------------------- DISTINCT
SELECT DISTINCT city FROM people;
SELECT DISTINCT lower(city) FROM people;
SELECT DISTINCT dept_id FROM people ORDER BY dept_id NULLS FIRST;
SELECT DISTINCT first_name, dept_id FROM people;
SELECT DISTINCT status FROM orders;
SELECT DISTINCT category FROM products ORDER BY category;
SELECT DISTINCT age / 10 AS decade FROM people ORDER BY decade;
SELECT DISTINCT active FROM people;

-- ---------------------------------------------------------------- CASE / COALESCE / NULLIF
SELECT id, CASE WHEN age < 30 THEN 'young' WHEN age < 50 THEN 'middle' WHEN age IS NULL THEN 'unknown' ELSE 'senior' END FROM people;
SELECT id, CASE dept_id WHEN 1 THEN 'eng' WHEN 2 THEN 'sales' ELSE 'other' END FROM people;
SELECT id, CASE WHEN score > 50 THEN score * 2 ELSE score END FROM people;
SELECT id, CASE WHEN qty > 0 THEN 'sale' WHEN qty = 0 THEN 'noop' ELSE 'refund' END AS kind FROM orders ORDER BY kind, id;
SELECT id, COALESCE(last_name, '(none)') FROM people;
SELECT id, COALESCE(age, score, -1) FROM people;
SELECT id, COALESCE(salary, 0) + 1000 FROM people;
SELECT id, COALESCE(city, 'nowhere') FROM people;
SELECT id, NULLIF(status, 'pending') FROM orders;
SELECT id, NULLIF(qty, 0) FROM orders;
SELECT id, COALESCE(NULLIF(discount, 0), 1) FROM orders;
SELECT id, CASE WHEN active THEN 'yes' WHEN NOT active THEN 'no' END FROM people;

-- ---------------------------------------------------------------- casts and arithmetic
SELECT id, age::text, age::numeric / 2, age / 2, age % 7 FROM people;
SELECT id, salary::int, salary::bigint * 2, round(salary) FROM people;
SELECT id, score::numeric(6,1), -score, score * score FROM people;
SELECT o.id, o.qty * p.price FROM orders o JOIN products p ON p.id = o.product_id;
SELECT id, price * 1.1, round(price * 1.1, 2), round(price), round(price, 1), price::int FROM products;
SELECT id, CAST(joined AS text), joined + 30, joined - '2010-01-01'::date FROM people;
SELECT id, (qty::numeric * (1 - COALESCE(discount, 0)))::numeric(10,2) FROM orders;
SELECT '42'::int + 1, '3.5'::numeric * 2, 10 / 3, 10.0 / 4, -7 / 2, -7 % 2;
SELECT 2147483647::bigint + 1, 1::smallint + 1::smallint, 5::numeric / 3;
SELECT CAST('2024-02-29' AS date), '2023-12-31'::date + 1, 'true'::boolean, 'f'::boolean;
SELECT 255::text, 1.50::text, true::text, NULL::int::text;
SELECT id, age > 40 AND active FROM people;

-- ---------------------------------------------------------------- string functions
SELECT id, upper(first_name), lower(first_name), length(first_name) FROM people;
SELECT id, substring(first_name, 1, 3), substring(first_name FROM 2), substring(first_name FROM 2 FOR 2) FROM people;
SELECT id, left(last_name, 2), right(last_name, 3) FROM people;
SELECT id, concat(first_name, '-', last_name), concat(first_name, ' ', last_name, ' ', city), first_name || ' ' || last_name FROM people;
SELECT id, replace(lower(city), 'o', '0') FROM people;
SELECT id, position('e' IN first_name), position('i' IN lower(last_name)) FROM people;
SELECT id, trim(both 'x' FROM 'xx' || first_name || 'xx'), ltrim('  ' || first_name), rtrim(first_name || '  ') FROM people;
SELECT id, right('000' || id::text, 4), left(first_name || '........', 8) FROM people;
SELECT id, concat(substring(name, 1, 1), substring(name, 1, 1), substring(name, 1, 1)), replace(name, substring(name, 1, 1), '') FROM products;
SELECT id, upper(substring(name, 1, 1)) || lower(substring(name, 2)) FROM products;
SELECT id, length(COALESCE(category, '')) FROM products;
SELECT id, greatest(age, 30), least(age, 30), greatest(score, age, 0) FROM people;
SELECT id, greatest(first_name, last_name), least(first_name, last_name) FROM people;
SELECT id, abs(score), mod(score, 7), score % 7 FROM people;
SELECT id, abs(qty - 5), mod(qty, 3) FROM orders;
SELECT id, upper(left(first_name, 1)) || lower(substring(first_name FROM 2)) FROM people;
SELECT id, left(city, position(' ' IN city) - 1), right(city, length(city) - position(' ' IN city)) FROM people WHERE position(' ' IN city) > 0;
SELECT first_name FROM people WHERE upper(first_name) = 'RUPERT';
SELECT id FROM people WHERE length(first_name) = 4;

-- ---------------------------------------------------------------- VALUES and generate_series
SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, NULL)) AS v(n, s);
SELECT g, g * g FROM generate_series(1, 10) AS g;
SELECT g FROM generate_series(20, 0, -5) AS g ORDER BY g;
SELECT p.id, g FROM products p, generate_series(1, 2) AS g WHERE p.id <= 3;

-- ---------------------------------------------------------------- errors
-- error: 22012
SELECT 1 / 0;
-- error: 22012
SELECT id, 100 / (qty - qty) FROM orders;
-- error: 22003
SELECT 2147483647 + 1;
-- error: 22003
SELECT salary::smallint FROM people WHERE salary IS NOT NULL;
-- error: 22P02
SELECT 'abc'::int;
-- error: 22P02
SELECT first_name::int FROM people;
-- error: 22007
SELECT 'yesterday-ish'::date;
-- error: 42703
SELECT nonexistent FROM people;
-- error: 42P01
SELECT * FROM nonexistent_table;
-- error: 42883
SELECT upper(42);
-- error: 42804
SELECT id FROM people WHERE age;
-- error: 42601
SELECT id FROM people WHERE;
