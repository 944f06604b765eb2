-- The demo's sample database. It starts from the users table of Neon's migration guide and
-- adds a small shop: products, orders and order lines, an index or two and a view.
create table users (
    id serial primary key,
    username varchar(50) unique not null,
    email varchar(100) unique not null,
    created_at timestamp with time zone default current_timestamp
);
insert into users (username, email) values ('alice', 'alice@example.com'), ('bob', 'bob@example.com');
insert into users (username, email)
select 'user' || g, 'user' || g || '@example.com' from generate_series(3, 2000) g;

create table products (
    id int generated always as identity primary key,
    name text not null,
    price numeric(10, 2) not null check (price >= 0),
    tags text[] not null default '{}'
);
insert into products (name, price, tags)
select 'product ' || g, round((random() * 100)::numeric, 2), array['tag' || g % 10]
from generate_series(1, 500) g;

create table orders (
    id bigserial primary key,
    user_id int not null references users (id),
    placed_at timestamptz not null default now(),
    status text not null default 'new'
);
insert into orders (user_id, placed_at, status)
select 1 + g % 2000, now() - g * interval '1 hour', (array['new', 'paid', 'shipped'])[1 + g % 3]
from generate_series(1, 20000) g;
create index orders_user_idx on orders (user_id);
create index orders_open_idx on orders (placed_at) where status <> 'shipped';

create table order_lines (
    order_id bigint not null references orders (id) on delete cascade,
    product_id int not null references products (id),
    quantity int not null check (quantity > 0),
    primary key (order_id, product_id)
);
insert into order_lines
select o, 1 + (o * 7 + k) % 500, 1 + k
from generate_series(1, 20000) o, generate_series(0, 2) k;
create index order_lines_product_idx on order_lines (product_id);

create view order_totals as
select o.id, o.user_id, sum(l.quantity * p.price) as total
from orders o join order_lines l on l.order_id = o.id join products p on p.id = l.product_id
group by o.id, o.user_id;
