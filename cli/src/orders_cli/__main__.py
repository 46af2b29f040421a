from orders_cli.main import app

app(prog_name="orders")
