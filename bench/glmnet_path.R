# glmnet's path and cv.glmnet on data written by Python: the reference for
# tests/engine/test_path_glmnet.py and bench/path.py.
#
# Usage: Rscript bench/glmnet_path.R DIR
#   DIR/options.json  {"n", "p", "family", "alpha", "nlambda", "lambda_min_ratio" (null: glmnet's),
#                      "thresh", "standardize", "intercept", "type_measure", "cv", "fit", "repeats"}
#   DIR/x.bin         n*p float64, little-endian, column-major
#   DIR/y.bin         n float64
#   DIR/lambda.bin    optional: the λ sequence (float64); absent: glmnet makes its own
#   DIR/foldid.bin    optional: n float64 fold ids 1..K (needed for "cv")
# Writes DIR/out.json: lambda, a0, beta (p x L, row-major), df, dev_ratio, fit_seconds, and with "cv":
# cvm, cvsd, nzero, lambda_min, lambda_1se, index_min, index_1se (1-based), cv_seconds. The seconds
# (elapsed, one per repeat) time the glmnet / cv.glmnet call only, not R's start or the data read.
suppressMessages({
  library(glmnet)
  library(jsonlite)
})
dir <- commandArgs(trailingOnly = TRUE)[1]
opt <- fromJSON(file.path(dir, "options.json"))
read_doubles <- function(name, count) {
  con <- file(file.path(dir, name), "rb")
  on.exit(close(con))
  readBin(con, "double", count, size = 8, endian = "little")
}
x <- matrix(read_doubles("x.bin", opt$n * opt$p), opt$n, opt$p)
y <- read_doubles("y.bin", opt$n)
lambda <- if (file.exists(file.path(dir, "lambda.bin"))) {
  read_doubles("lambda.bin", file.info(file.path(dir, "lambda.bin"))$size / 8)
} else NULL
args <- list(x = x, y = y, family = opt$family, alpha = opt$alpha, thresh = opt$thresh,
             standardize = opt$standardize, intercept = opt$intercept, maxit = 1e7)
if (!is.null(lambda)) args$lambda <- lambda else args$nlambda <- opt$nlambda
if (!is.null(opt$lambda_min_ratio)) args$lambda.min.ratio <- opt$lambda_min_ratio
repeats <- if (is.null(opt$repeats)) 1 else opt$repeats
timed <- function(call) {
  seconds <- numeric(repeats)
  for (i in seq_len(repeats)) seconds[i] <- system.time(value <- call())[["elapsed"]]
  list(value = value, seconds = seconds)
}
out <- list(glmnet_version = as.character(packageVersion("glmnet")))
if (isTRUE(opt$fit)) {
  run <- timed(function() do.call(glmnet, args))
  fit <- run$value
  seconds <- run$seconds
  out <- c(out, list(lambda = fit$lambda, a0 = unname(fit$a0), beta = unname(as.matrix(fit$beta)),
                     df = unname(fit$df), dev_ratio = fit$dev.ratio, fit_seconds = I(seconds)))
}
if (isTRUE(opt$cv)) {
  foldid <- as.integer(read_doubles("foldid.bin", opt$n))
  run <- timed(function() do.call(cv.glmnet, c(args, list(foldid = foldid, type.measure = opt$type_measure))))
  cv <- run$value
  seconds <- run$seconds
  out <- c(out, list(cv_lambda = cv$lambda, cvm = cv$cvm, cvsd = cv$cvsd, nzero = unname(cv$nzero),
                     lambda_min = cv$lambda.min, lambda_1se = cv$lambda.1se,
                     index_min = cv$index[["min", 1]], index_1se = cv$index[["1se", 1]], cv_seconds = I(seconds)))
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, matrix = "rowmajor"), file.path(dir, "out.json"))
