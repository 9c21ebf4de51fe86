-- Differential suite 1: filtering, ordering, LIMIT/OFFSET, DISTINCT, CASE,
-- COALESCE/NULLIF, LIKE/ILIKE, BETWEEN, IN, casts, string and math functions.
-- Each statement ends with ';' at the end of a line. A '-- error: SQLSTATE'
-- comment marks a statement that is expected to fail.
-- Text ordering assumes the C collation (byte order).

\ir setup/shop.sql

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
