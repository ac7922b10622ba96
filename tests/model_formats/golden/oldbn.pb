
!
inputPlaceholder*
dtype0
Ñ
conv/weightsConst*
dtype0*¬
value¢BŸ"ˆ,İ¹=!œJ>fæ¼{>_P°>‘¿>‡GÎ½“›>îRC¾;ÒÏ¼T@¥>×9½·İ
¾c”6¾ço>ÏHø>Íg>Zd‰½h¢v>ÅE’>Êgá><qO¾İùC>ƒñõ½Ì&¾üÀ>6(>Ú¼<ØÑ>.&N=]¦‡¾+Î‹>ˆ+¾oc…¾]–ÿ½Kb@½™+Š>lŸÙ½Ï¤¿Y=.¾IÁ=éÓ½£z½.1»¾˜ìî½¬ï1>’C7>ññ¾–^¾à”¾Í‡>áe¾Ö§½§Ï|¾µ­‹¾ò½Då‰>–p0¾á³>¤ˆ¼="^>œc>?æ>.?â±=¢ÀÄ<By7½+éZ>Ş¿àÓW¾%½-Nj¾Æ‡˜¾½KÇ>ßà¾Æ:¾Ë)2¾VÅ¾•³ ¾Ï<j>Ú½vÊ?Ó—Ñ¾×“=ë¤Ä¾<#=°;³>ÿ[¯¾j˜>õ¤z¾ğ¯¾$‡È=G;e>Ş‡#=}¿=Ë›$¼’2¾ù!%¿*…â½Õ1X¾…)>{C~¾+©?®w>>!{¾ÁÔI>Ië—½úÅ>qT¾xİ>ôd£¾çH=; –¼NM‰¾v4Ã½F,§;_êµ¾>‚¾7¢>R7j¾6ô>-Öó>€å¾6Ş=xW%>ìû^>Ğ¡"¾ÄCf>¾ß!¾Wå¼÷ À>©Á¼[q“¾|ë.¾k¦Ç=öi¾µÛ”¾fk<=›©¾¤‡!?ÕÏL¾óÓT>‹Yà¾ªÌ½å+}>ÖÎ%>ñBF>•È/¾	&p=Vq½>BØ¾&ò¯>÷O¾)]½¢)„>=K>°G?ÓÆª¼Ş>QIû¼6ö1<?§¦>Ü|N>
[
conv/Conv2DConv2Dinputconv/weights*
T0*
paddingSAME*
strides

L
bn/meanConst*
dtype0*-
value$B""Ÿ…J½å¡ú»Ğš<÷->8@š½öÜÂ<
P
bn/varianceConst*
dtype0*-
value$B"".å?³êŠ?*ÓŸ?NH•?5qÕ??€ç?
L
bn/betaConst*
dtype0*-
value$B""¥í»½¼±G>Wİ…¾úF¾u<£é…=
M
bn/gammaConst*
dtype0*-
value$B""oı?YL?ãLb?8 ?'¸?3gG?
«
bn/BatchNorm BatchNormWithGlobalNormalizationconv/Conv2Dbn/meanbn/variancebn/betabn/gamma*
T0*
scale_after_normalization(*
variance_epsilon%oƒ:
&
bn/ReluRelubn/BatchNorm*
T0"