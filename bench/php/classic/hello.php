<?php
// classic-hello: one script file, one echo (what nginx + php-fpm runs for every request).
header('Content-Type: text/plain');
echo 'Hello';
