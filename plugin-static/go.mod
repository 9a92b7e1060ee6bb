module vpccni.dev/plugin

go 1.19
