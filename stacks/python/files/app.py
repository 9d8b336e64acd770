import markupsafe
import six

print("app-example", six.__version__, markupsafe.escape("<ok>"))
