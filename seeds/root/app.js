console.log("pserv sample");
