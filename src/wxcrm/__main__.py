from wxcrm.cli import app

app(prog_name="wxcrm")
