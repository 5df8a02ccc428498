db_password: hunter2
