module github.com/sluice-go/sluice

go 1.23

require go.uber.org/goleak v1.3.0

require github.com/stretchr/testify v1.8.1 // indirect
