-- Reference data (dims), replaced whole by PUT /v1/dims/{name}. `dims_versions` lets the enrich job see a
-- change by polling one small row per dimension instead of rereading the tables.
create table if not exists car_models (
  model_id  integer primary key,
  car_brand text not null,
  car_model text not null
);

create table if not exists car_colors (
  color_id   integer primary key,
  color_name text not null
);

create table if not exists cars (
  car_id    bigint  primary key,
  driver_id bigint  not null,
  model_id  integer not null,
  color_id  integer not null
);

create table if not exists dims_versions (
  name       text        primary key,
  version    bigint      not null,
  rows       integer     not null,
  updated_at timestamptz not null default now()
);
