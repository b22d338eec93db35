<?php
// classic-cached: a 240 KB HTML page PHP marks shareable for a minute (an anonymous WordPress page
// behind a micro-cache): the same bytes every time, made from a fixed seed.
header('Cache-Control: public, max-age=60');
header('Content-Type: text/html; charset=utf-8');
mt_srand(7);
$words = ['<p class="post">', '</p>', '<a href="/blog/', '">', '</a>', 'lorem', 'ipsum', 'dolor', 'sit', 'amet'];
$page = "<!doctype html><html><body>\n";
while (strlen($page) < 240000) $page .= $words[mt_rand(0, 9)] . ' ' . mt_rand(0, 99999) . ' ';
echo $page, "\n</body></html>\n";
